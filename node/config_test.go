package node

import (
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
)

func TestWithDefaultsFillsEveryUnsetField(t *testing.T) {
	c, err := Config{Client: true}.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != DefaultNetwork || c.Listen != DefaultListen || c.Logger == nil || c.K != kademlia.K ||
		c.SaveInterval != DefaultSaveInterval || c.UpkeepInterval != DefaultUpkeepInterval || c.RefreshInterval != DefaultRefreshInterval || c.RepublishInterval != kademlia.RepublishInterval {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if _, ok := c.Clock.(clock.Real); !ok {
		t.Fatalf("clock %T, want clock.Real", c.Clock)
	}
	m, err := Config{Client: true, Mainline: &MainlineConfig{}}.WithDefaults()
	if err != nil || m.Mainline.Interval != DefaultMainlineRounds || m.Mainline.JoinTimeout != DefaultMainlineJoin {
		t.Fatalf("mainline defaults: %+v, %v", m.Mainline, err)
	}
	// Set fields stay as they are, and applying defaults twice changes
	// nothing (Start applies them to what a caller already checked).
	clk := &clock.Offset{}
	set := Config{Client: true, Network: "n", Listen: "127.0.0.1:1", K: 3, Clock: clk, SaveInterval: time.Second}
	once, err := set.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	twice, err := once.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if twice.Network != "n" || twice.Listen != "127.0.0.1:1" || twice.K != 3 || twice.Clock != clk || twice.SaveInterval != time.Second {
		t.Fatalf("set fields changed: %+v", twice)
	}
}

func TestWithDefaultsRefusesWhatCannotRun(t *testing.T) {
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"DataDir", Config{}},
		{"Admin", Config{Client: true, Admin: "0.0.0.0:9180"}},
		{"Admin", Config{Client: true, Admin: "localhost"}},
		{"Listen", Config{Client: true, Listen: "4410"}},
		{"K", Config{Client: true, K: kademlia.K + 1}},
		{"QuotaBytes", Config{Client: true, QuotaBytes: -1}},
		{"RequestTimeout", Config{Client: true, RequestTimeout: -time.Second}},
		{"Mainline.Port", Config{Client: true, Mainline: &MainlineConfig{Port: 70000}}},
	} {
		_, err := tc.cfg.WithDefaults()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want a ConfigError on %s", tc.cfg, err, tc.field)
		}
	}
}
