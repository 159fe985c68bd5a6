package rendezvous

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestStartRejectsBadConfig(t *testing.T) {
	t.Parallel()
	good := func() Config {
		return Config{Network: "flowmail", Port: 4433, StateDir: t.TempDir(), Routers: []string{"127.0.0.1:1"}}
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"empty network", func(c *Config) { c.Network = "" }, "network name is 0 bytes"},
		{"network over 32 bytes", func(c *Config) { c.Network = strings.Repeat("n", 33) }, "network name is 33 bytes"},
		{"no QUIC port", func(c *Config) { c.Port = 0 }, "QUIC Port 0"},
		{"QUIC port too big", func(c *Config) { c.Port = 65536 }, "QUIC Port 65536"},
		{"DHT port is the QUIC port", func(c *Config) { c.DHTPort = 4433 }, "is the QUIC port"},
		{"DHT port negative", func(c *Config) { c.DHTPort = -1 }, "DHTPort -1"},
		{"IPv6 listen address", func(c *Config) { c.ListenAddr = "::1" }, "not an IPv4 address"},
		{"listen address not an IP", func(c *Config) { c.ListenAddr = "localhost" }, "not an IPv4 address"},
		{"no state directory", func(c *Config) { c.StateDir = "" }, "StateDir is empty"},
		{"router without port", func(c *Config) { c.Routers = []string{"router.example"} }, "router.example"},
		{"router port zero", func(c *Config) { c.Routers = []string{"127.0.0.1:0"} }, "port in 1..65535"},
		{"negative interval", func(c *Config) { c.Interval = -1 }, "negative Interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.change(&c)
			r, err := Start(t.Context(), c)
			if err == nil {
				r.Close()
				t.Fatal("Start accepted the config")
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v; want ErrConfig mentioning %q", err, tt.want)
			}
		})
	}
}

// TestStartFailsOnBusyDHTPort checks the error, and (through TestMain's
// leak check) that the failed start leaves no library goroutine behind.
func TestStartFailsOnBusyDHTPort(t *testing.T) {
	t.Parallel()
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	r, err := Start(t.Context(), Config{
		Network:    "flowmail",
		Port:       4433,
		ListenAddr: "127.0.0.1",
		DHTPort:    busy.LocalAddr().(*net.UDPAddr).Port,
		StateDir:   t.TempDir(),
		Routers:    []string{"127.0.0.1:1"},
	})
	if err == nil {
		r.Close()
		t.Fatal("Start bound a port already in use")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Start: %v; want address already in use", err)
	}
}

func TestDefaultsApply(t *testing.T) {
	s, err := Config{Network: "flowmail", Port: 4433, StateDir: "x"}.settings()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Routers) != len(DefaultRouters()) || s.Interval != DefaultInterval || s.perIPLimit != DefaultPerIPLimit || s.Logger == nil {
		t.Fatalf("defaults not applied: routers %v, interval %v, per-IP %d", s.Routers, s.Interval, s.perIPLimit)
	}
	s, err = Config{Network: "flowmail", Port: 4433, StateDir: "x", ListenAddr: "127.0.0.1"}.settings()
	if err != nil {
		t.Fatal(err)
	}
	if !s.loopback || s.perIPLimit != noPerIPLimit {
		t.Fatalf("a loopback DHT keeps a per-IP cap of %d", s.perIPLimit)
	}
}
