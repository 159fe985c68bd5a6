package rendezvous

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// DefaultInterval is how often a node announces itself and looks up the
// others. Common mainline implementations forget an announcement after
// 30 minutes; announcing every 5 keeps a node listed through a few lost
// packets.
const DefaultInterval = 5 * time.Minute

// DefaultPerIPLimit is the library's default cap on packets per minute
// answered from one source IP.
const DefaultPerIPLimit = 50

// DefaultRouters returns the public mainline bootstrap routers.
func DefaultRouters() []string {
	return []string{
		"router.bittorrent.com:6881",
		"dht.transmissionbt.com:6881",
		"router.utorrent.com:6881",
	}
}

// Config configures a Rendezvous.
type Config struct {
	// Network is the flowmail network name (1 to 32 bytes, the same name
	// the transport HELLO carries). Nodes of one network meet under its
	// infohash; other networks never see them.
	Network string
	// Port is the node's QUIC port: the port announced to the DHT.
	Port int
	// LookupOnly finds the network's nodes without announcing this one:
	// for client nodes, which serve nobody and must not be handed out.
	LookupOnly bool
	// ListenAddr is the IPv4 address the DHT's UDP socket binds; empty
	// means every IPv4 address. A loopback address marks a local mainline
	// (a testnet): then loopback peers are accepted and the per-IP packet
	// cap is off by default, since every node there shares 127.0.0.1.
	ListenAddr string
	// DHTPort is the DHT's own UDP port, 0 for an ephemeral one. It must
	// not be the QUIC port: mainline packets would reach QUIC.
	DHTPort int
	// Routers bootstrap the DHT, as "host:port". Nil or empty means
	// DefaultRouters(). Names are resolved (IPv4 only) during Start and,
	// if none resolved, again at every round.
	Routers []string
	// StateDir is the node's data directory; the DHT keeps its one file
	// there (mainline-contacts) and writes nowhere else. Required.
	StateDir string
	// Logger receives the package's and the library's messages; nil
	// discards them.
	Logger *slog.Logger
	// Interval between announce-and-lookup rounds; 0 means
	// DefaultInterval. Lookup may start a round sooner.
	Interval time.Duration
	// PerIPLimit caps the packets per minute the DHT answers from one
	// source IP. The library bans a host over the cap for good (it only
	// forgets the oldest of 1000 banned hosts). 0 means
	// DefaultPerIPLimit, or no cap when ListenAddr is loopback; negative
	// means no cap.
	PerIPLimit int

	// Tests shorten these; zero means the defaults.
	stopTimeout  time.Duration // defaultStopTimeout
	probeTimeout time.Duration // defaultProbeTimeout
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("rendezvous: bad config")

// settings is a validated Config with defaults applied.
type settings struct {
	Config
	infohash   [20]byte
	listenIP   netip.Addr // invalid when ListenAddr is empty
	loopback   bool
	perIPLimit int
}

func (c Config) settings() (settings, error) {
	s := settings{Config: c}
	ih, err := InfoHash(c.Network)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.infohash = ih
	if c.Port < 1 || c.Port > 65535 {
		return s, fmt.Errorf("%w: QUIC Port %d is not in 1..65535", ErrConfig, c.Port)
	}
	if c.DHTPort < 0 || c.DHTPort > 65535 {
		return s, fmt.Errorf("%w: DHTPort %d is not in 0..65535", ErrConfig, c.DHTPort)
	}
	if c.DHTPort == c.Port {
		return s, fmt.Errorf("%w: DHTPort %d is the QUIC port; the mainline DHT needs its own UDP socket", ErrConfig, c.DHTPort)
	}
	if c.ListenAddr != "" {
		ip, err := netip.ParseAddr(c.ListenAddr)
		if err != nil || !ip.Unmap().Is4() {
			return s, fmt.Errorf("%w: ListenAddr %q is not an IPv4 address (the mainline DHT here is IPv4 only)", ErrConfig, c.ListenAddr)
		}
		s.listenIP = ip.Unmap()
		s.loopback = s.listenIP.IsLoopback()
	}
	if c.StateDir == "" {
		return s, fmt.Errorf("%w: StateDir is empty; the DHT must keep its state in the node's data directory", ErrConfig)
	}
	if len(c.Routers) == 0 {
		s.Routers = DefaultRouters()
	}
	for _, r := range s.Routers {
		if _, err := splitRouter(r); err != nil {
			return s, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Interval < 0 {
		return s, fmt.Errorf("%w: negative Interval %v", ErrConfig, c.Interval)
	}
	if c.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.stopTimeout <= 0 {
		s.stopTimeout = defaultStopTimeout
	}
	if s.probeTimeout <= 0 {
		s.probeTimeout = defaultProbeTimeout
	}
	switch {
	case c.PerIPLimit > 0:
		s.perIPLimit = c.PerIPLimit
	case c.PerIPLimit < 0 || s.loopback:
		s.perIPLimit = noPerIPLimit
	default:
		s.perIPLimit = DefaultPerIPLimit
	}
	return s, nil
}

// noPerIPLimit is a cap the library's throttle never reaches: it counts
// down from 59 and blocks a host below 60-limit.
const noPerIPLimit = 1 << 30

// router is a parsed "host:port".
type router struct {
	host string
	port uint16
}

func splitRouter(s string) (router, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return router{}, fmt.Errorf("router %q: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 || host == "" {
		return router{}, fmt.Errorf("router %q: want host:port with a port in 1..65535", s)
	}
	return router{host: host, port: uint16(p)}, nil
}
