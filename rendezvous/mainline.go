package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nictuku/dht"
)

// defaultStopTimeout bounds how long Close waits for the library to
// stop. Its Stop waits for its goroutines with no deadline, and two of
// them can wedge (see stopDHT); a node must still be able to shut down.
const defaultStopTimeout = 5 * time.Second

// mainlineOptions are the library settings we choose.
type mainlineOptions struct {
	listenIP   netip.Addr // invalid means every IPv4 address
	port       int
	routers    []string // resolved "ip:port"
	perIPLimit int
	// local marks a mainline on loopback, which is tiny (see localMaxNodes).
	local bool
}

// The library keeps asking for more nodes, on every answer it gets, while
// its table holds fewer than 16 (a constant of the library) or fewer than
// MaxNodes/2, and asks the routers again each time nobody else qualifies:
// a flood at line rate until the table fills. On the real mainline the
// table fills in seconds; a loopback mainline must have at least
// minLocalNodes nodes and its nodes a MaxNodes of at most twice that.
const (
	minLocalNodes = 16
	localMaxNodes = 2 * minLocalNodes
)

// newDHT creates (but does not start) a library node that never touches
// the disk and logs through logger.
func newDHT(o mainlineOptions, logger *slog.Logger) (*dht.DHT, error) {
	c := dht.NewConfig()
	if o.listenIP.IsValid() {
		c.Address = o.listenIP.String()
	}
	c.Port = o.port
	c.DHTRouters = strings.Join(o.routers, ",")
	c.UDPProto = "udp4"
	// Off: the library would read and write ~/.taipeitorrent/dht-<port>
	// (or /var/run/taipeitorrent) and log.Fatal if it cannot. Our state
	// lives in StateDir (contacts.go).
	c.SaveRoutingTable = false
	// time.Tick of a non-positive period is nil, so the save tick never
	// fires; with the store off it would only grow a global expvar map
	// by one entry per node ever started.
	c.SavePeriod = -1
	// A rendezvous needs a few flowmail peers, not a big routing table or
	// a tracker's worth of other infohashes: smaller than the library's
	// defaults (500 nodes, 2048 x 256 peers, about 25 MB).
	c.MaxNodes = 100
	if o.local {
		c.MaxNodes = localMaxNodes
		// The global cap (100 packets a second) drops a quarter of a
		// local mainline's packets while the tables fill, and a node
		// whose query was dropped is not asked again for 15 s (a constant
		// of the library). The nodes are all ours.
		c.RateLimit = -1
	}
	c.NumTargetPeers = 16
	c.MaxInfoHashes = 256
	c.MaxInfoHashPeers = 64
	c.ClientPerMinuteLimit = o.perIPLimit
	d, err := dht.New(c)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: creating mainline DHT node: %w", err)
	}
	// Set before Start: the library's goroutines read these fields
	// without a lock.
	d.DebugLogger = slogAdapter{logger}
	return d, nil
}

// probePort checks that the library will be able to bind its socket. Its
// New starts a goroutine (the per-IP throttle's cleanup ticker) that only
// a running node stops, so a Start that fails to bind would leak it.
func probePort(ip netip.Addr, port int) error {
	if port == 0 {
		return nil
	}
	addr := net.UDPAddr{Port: port}
	if ip.IsValid() {
		addr.IP = ip.AsSlice()
	}
	c, err := net.ListenUDP("udp4", &addr)
	if err != nil {
		return fmt.Errorf("rendezvous: mainline DHT port: %w", err)
	}
	return c.Close()
}

// stopDHT stops a started library node, waiting at most timeout.
//
// The library's Stop closes a channel and waits for its goroutines with
// no deadline. Two of them can wedge, and then Stop never returns:
//   - readFromSocket drops its buffer on every zero-length datagram, and
//     after three of them blocks forever in arena.Pop (so three empty UDP
//     packets from anyone make the node deaf and unstoppable);
//   - pingSlowly sends on an unbuffered channel without watching for
//     stop, so it hangs if Stop lands while it sends.
//
// On timeout the caller gets an error, the wedged goroutine and the one
// waiting in Stop are left behind, and the socket is closed anyway (the
// main loop closes it on its way out).
func stopDHT(d *dht.DHT, timeout time.Duration) error {
	stopped := make(chan struct{})
	go func() {
		d.Stop()
		close(stopped)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-stopped:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: it did not stop within %v; its goroutines are left running", ErrWedged, timeout)
	}
}

// ErrWedged reports a library node that could not be stopped (stopDHT).
var ErrWedged = errors.New("rendezvous: mainline DHT wedged")

// instance is one running library node and the goroutine that drains its
// results.
type instance struct {
	d         *dht.DHT
	drainStop chan struct{}
	drained   chan struct{}
}

// startInstance starts a library node on port (0: ephemeral) that knows
// the current routers and saved contacts, and its drain goroutine.
func (r *Rendezvous) startInstance(port int) (*instance, error) {
	r.mu.Lock()
	routers := slices.Clone(r.routers)
	r.mu.Unlock()
	d, err := newDHT(mainlineOptions{
		listenIP:   r.s.listenIP,
		port:       port,
		routers:    routers,
		perIPLimit: r.s.perIPLimit,
		local:      r.s.loopback,
	}, r.s.Logger)
	if err != nil {
		return nil, err
	}
	d.Logger = queryHook{r}
	if err := d.Start(); err != nil {
		return nil, fmt.Errorf("rendezvous: starting mainline DHT: %w", err)
	}
	in := &instance{d: d, drainStop: make(chan struct{}), drained: make(chan struct{})}
	go r.drain(in)
	ip := netip.IPv4Unspecified()
	if r.s.listenIP.IsValid() {
		ip = r.s.listenIP
	}
	addr := netip.AddrPortFrom(ip, uint16(d.Port()))
	r.mu.Lock()
	r.addr = addr
	r.mu.Unlock()
	for _, c := range r.savedContacts() {
		d.AddNode(c.String())
	}
	return in, nil
}

// stopInstance stops a library node, then its drain goroutine: the
// library sends some results without watching for stop, so they must be
// read until it is gone.
func (r *Rendezvous) stopInstance(in *instance) error {
	if in == nil {
		return nil
	}
	err := stopDHT(in.d, r.s.stopTimeout)
	close(in.drainStop)
	<-in.drained
	return err
}

// drain reads a library node's results until it has stopped.
func (r *Rendezvous) drain(in *instance) {
	defer close(in.drained)
	for {
		select {
		case res := <-in.d.PeersRequestResults:
			for ih, values := range res {
				if string(ih) == string(r.s.infohash[:]) {
					r.addValues(values)
				}
			}
		case <-in.drainStop:
			return
		}
	}
}

// queryHook is the library's Logger hook, called on its main loop for
// every get_peers query we receive: a cheap way to learn live mainline
// nodes worth saving for the next start.
type queryHook struct{ r *Rendezvous }

func (h queryHook) GetPeers(addr net.UDPAddr, _ string, _ dht.InfoHash) {
	if ap, ok := netip.AddrFromSlice(addr.IP); ok && addr.Port > 0 && addr.Port <= 65535 {
		h.r.noteContact(netip.AddrPortFrom(ap.Unmap(), uint16(addr.Port)))
	}
}

// slogAdapter is the library's DebugLogger. It logs at Debug (its Infof
// is per-request chatter), formatting only when Debug is enabled.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	a.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "mainline")
}

func (a slogAdapter) Debugf(format string, args ...any) { a.log(slog.LevelDebug, format, args) }
func (a slogAdapter) Infof(format string, args ...any)  { a.log(slog.LevelDebug, format, args) }
func (a slogAdapter) Errorf(format string, args ...any) { a.log(slog.LevelWarn, format, args) }

// resolveRouters turns "host:port" routers into the IPv4 "ip:port" form
// the library wants, under ctx. The library would otherwise resolve names
// itself, inside its main loop, with no deadline, on every lookup that
// falls back to the routers. Names that do not resolve are logged at
// failLevel: a warning at start, debug for the retries of every round.
func resolveRouters(ctx context.Context, routers []string, logger *slog.Logger, failLevel slog.Level) []string {
	var res net.Resolver
	var out []string
	seen := map[netip.AddrPort]bool{}
	for _, s := range routers {
		r, err := splitRouter(s)
		if err != nil {
			logger.Warn("mainline router ignored", "router", s, "err", err)
			continue
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(r.host); err == nil {
			ips = []netip.Addr{ip.Unmap()}
		} else if ips, err = res.LookupNetIP(ctx, "ip4", r.host); err != nil {
			logger.Log(ctx, failLevel, "mainline router did not resolve", "router", s, "err", err)
			continue
		}
		for _, ip := range ips {
			ap := netip.AddrPortFrom(ip.Unmap(), r.port)
			if !ap.Addr().Is4() || seen[ap] {
				continue
			}
			seen[ap] = true
			out = append(out, ap.String())
		}
	}
	return out
}
