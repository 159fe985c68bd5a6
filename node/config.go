package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/flowmail/flowmail/blockstore"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// DefaultNetwork is the name of the public flowmail network.
const DefaultNetwork = "flowmail"

// Defaults that Config.WithDefaults fills in. Programs that show their
// defaults (flags, example configs) use these names rather than repeat
// the values.
const (
	DefaultListen          = "0.0.0.0:0"
	DefaultSaveInterval    = 5 * time.Minute
	DefaultUpkeepInterval  = time.Minute // republish dates and liveness checks
	DefaultPubkeyInterval  = 24 * time.Hour
	DefaultMainlineJoin    = 10 * time.Second
	DefaultMainlineRounds  = 5 * time.Minute
	DefaultRefreshInterval = kademlia.DefaultRefreshInterval
)

// Config says how to run a node. Start applies WithDefaults to it, so a
// zero field means the default written beside it.
type Config struct {
	// DataDir holds the node's key, block store and saved contacts. A
	// client-mode node without DataDir keeps nothing on disk.
	DataDir string
	// Identity is the node's own key; nil loads DataDir/node.key (created
	// on first start) or, in client mode, makes a throwaway one so the
	// node ID does not link a client to its user.
	Identity *identity.Identity
	// Network is the network name peers must share (DefaultNetwork).
	Network string
	// Listen is the UDP address for QUIC, IP:port (DefaultListen).
	Listen string
	// Bootstrap peers are tried with the contacts saved at the last run.
	Bootstrap []transport.Contact
	// Client runs the node in client mode: it stores nothing for others
	// and stays out of their routing tables.
	Client bool
	// Advertise are addresses this node tells peers it is reachable at.
	Advertise []netip.AddrPort
	// QuotaBytes bounds the block store (0: no bound).
	QuotaBytes int64
	// StoreFootprint sizes the Badger store's memory; a testnet, which
	// runs many nodes in one process, sets blockstore.FootprintShared.
	StoreFootprint blockstore.Footprint
	// Admin is a loopback IP:port for /metrics and /status ("": none).
	Admin string
	// Logger receives the node's records (nil: discard). Each component
	// logs through it with a "component" attribute.
	Logger *slog.Logger
	// NoIPLimits turns off the per-IP-group routing table limits, for
	// testnets where every node shares 127.0.0.1.
	NoIPLimits bool

	// Clock is the node's one clock (nil: clock.Real). The DHT, the
	// block store and the node's own loops all read time through it, so
	// a test that moves it moves all of them.
	Clock clock.Clock

	// RefreshInterval, RepublishInterval and SaveInterval pace the
	// background work (0: DefaultRefreshInterval, kademlia's
	// RepublishInterval, DefaultSaveInterval). UpkeepInterval is how
	// often, ±10%, the node looks for blocks due for republishing and
	// contacts due for a liveness check (0: DefaultUpkeepInterval); a
	// test that drives republishing itself sets it beyond its length.
	RefreshInterval   time.Duration
	RepublishInterval time.Duration
	SaveInterval      time.Duration
	UpkeepInterval    time.Duration

	// Reachability says whether a full node checks that others can reach
	// it (ReachAuto, the default) or is told so (ReachPublic).
	Reachability Reachability
	// LocalAddrs lists this machine's IP addresses (nil: the interfaces'
	// addresses); tests replace it to stand for a machine behind NAT.
	LocalAddrs func() ([]netip.Addr, error)

	// Mainline, when set, finds peers through the BitTorrent mainline DHT
	// (nodes with a DataDir only; clients never announce themselves).
	Mainline *MainlineConfig

	// K is the replication factor and bucket size (0: kademlia.K). Lower
	// it only for tests of small networks, where K would cover every node.
	K int
	// DialTimeout, HandshakeTimeout and RequestTimeout bound QUIC dials,
	// handshakes (the HELLO exchange, and an incoming QUIC handshake that
	// goes quiet) and requests (0: the transport's defaults).
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	RequestTimeout   time.Duration
	// StallTimeout is kademlia.Config.StallTimeout: how long a lookup
	// waits on a silent peer before passing over it (0: adaptive;
	// negative: never, so lookups are exact however slow the machine).
	StallTimeout time.Duration

	// PacketConn, when set, is the UDP socket QUIC uses instead of
	// listening on Listen; the node does not close it.
	PacketConn net.PacketConn

	// NoOnionRelay turns off the onion relay a full node runs (section
	// 14): the node then refuses MsgOnion packets.
	NoOnionRelay bool
	// OnionRate and OnionBurst bound the onion packets one source may
	// hand the relay per second, and at once (0: OnionPacketsPerSecond,
	// OnionBurst).
	OnionRate  float64
	OnionBurst int
	// OnionMinWork is the least stamp work the relay accepts, and the
	// work this node's onion client grinds (0: onion.MinStampWork);
	// testnets lower it to keep grinding cheap.
	OnionMinWork int
	// OnionObserver, when set, sees what the relay sees (tests).
	OnionObserver OnionObserver

	// Transport, when set, replaces QUIC (in-memory tests); the node does
	// not close it. Its handler must be set by the caller to Node.Handle.
	Transport transport.Transport
}

// ConfigError is a Config field that WithDefaults refuses. It matches
// ErrInvalidConfig with errors.Is.
type ConfigError struct {
	Field  string // the Config field, such as "Admin"
	Value  string // what it held
	Reason string // what is wrong with it
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("node: %s %q: %s", e.Field, e.Value, e.Reason)
}

// Is makes a ConfigError match ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// WithDefaults returns c with every unset field given its default, or a
// *ConfigError for the first field that is wrong. It is the one place
// defaults are applied: Start calls it, and programs that build a Config
// from flags or files call it to check what they built.
func (c Config) WithDefaults() (Config, error) {
	bad := func(field, value, reason string) (Config, error) {
		return c, &ConfigError{Field: field, Value: value, Reason: reason}
	}
	if c.Network == "" {
		c.Network = DefaultNetwork
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("Listen", c.Listen, "want IP:port, e.g. 0.0.0.0:4410")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Clock = clock.Or(c.Clock)
	if c.SaveInterval == 0 {
		c.SaveInterval = DefaultSaveInterval
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.UpkeepInterval == 0 {
		c.UpkeepInterval = DefaultUpkeepInterval
	}
	if c.RepublishInterval == 0 {
		c.RepublishInterval = kademlia.RepublishInterval
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"SaveInterval", c.SaveInterval}, {"RefreshInterval", c.RefreshInterval}, {"UpkeepInterval", c.UpkeepInterval}, {"RepublishInterval", c.RepublishInterval},
		{"DialTimeout", c.DialTimeout}, {"HandshakeTimeout", c.HandshakeTimeout}, {"RequestTimeout", c.RequestTimeout}} {
		if d.v < 0 {
			return bad(d.name, d.v.String(), "must not be negative")
		}
	}
	if c.K == 0 {
		c.K = kademlia.K
	}
	if c.OnionRate == 0 {
		c.OnionRate = OnionPacketsPerSecond
	}
	if c.OnionBurst == 0 {
		c.OnionBurst = OnionBurst
	}
	if c.OnionRate < 0 || c.OnionBurst < 1 {
		return bad("OnionRate", fmt.Sprintf("%v/s burst %d", c.OnionRate, c.OnionBurst), "want a positive rate and a burst of at least 1")
	}
	if c.OnionMinWork < 0 || c.OnionMinWork > 64 {
		return bad("OnionMinWork", fmt.Sprint(c.OnionMinWork), "want 0 to 64")
	}
	if c.K < 1 || c.K > kademlia.K {
		return bad("K", fmt.Sprint(c.K), fmt.Sprintf("want 1 to %d", kademlia.K))
	}
	if c.QuotaBytes < 0 {
		return bad("QuotaBytes", fmt.Sprint(c.QuotaBytes), "must not be negative (0: no quota)")
	}
	if c.Reachability > ReachPublic {
		return bad("Reachability", fmt.Sprint(c.Reachability), "want ReachAuto or ReachPublic")
	}
	if !c.Client && c.DataDir == "" && c.Transport == nil {
		return bad("DataDir", "", "a full node needs a data directory for its block store")
	}
	if c.Admin != "" {
		ap, err := netip.ParseAddrPort(c.Admin)
		if err != nil {
			return bad("Admin", c.Admin, "want IP:port, e.g. 127.0.0.1:9180")
		}
		if !ap.Addr().IsLoopback() {
			return bad("Admin", c.Admin, "not a loopback address: metrics and status are for this machine only (use 127.0.0.1)")
		}
	}
	if c.Mainline != nil {
		m := *c.Mainline
		if m.Interval == 0 {
			m.Interval = DefaultMainlineRounds
		}
		if m.JoinTimeout == 0 {
			m.JoinTimeout = DefaultMainlineJoin
		}
		if m.Interval < 0 || m.JoinTimeout < 0 {
			return bad("Mainline", fmt.Sprintf("%+v", m), "intervals must not be negative")
		}
		if m.Port < 0 || m.Port > 65535 {
			return bad("Mainline.Port", fmt.Sprint(m.Port), "want 0 to 65535")
		}
		c.Mainline = &m
	}
	return c, nil
}
