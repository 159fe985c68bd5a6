package naming

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/flowmail/flowmail/record"
)

// DNS defaults (docs/PROTOCOL.md 19.2).
const (
	// DefaultLookupTimeout bounds a whole lookup, every server and retry.
	DefaultLookupTimeout = 6 * time.Second
	// DefaultAttemptTimeout bounds one query to one server.
	DefaultAttemptTimeout = 1500 * time.Millisecond
	// DefaultResolvConf is where the system's resolvers are listed.
	DefaultResolvConf = "/etc/resolv.conf"

	ednsSize     = 1232 // the DNS flag day 2020 size: no IP fragmentation
	maxCNAMEs    = 8
	maxResolvers = 3 // resolv.conf's own MAXNS
)

// DNS asks DNS servers for TXT records: the resolvers of resolv.conf, or
// the servers given. A lookup asks every server over UDP, once more over
// UDP, then over TCP (a truncated answer goes to TCP at once), each query
// bounded by AttemptTimeout and the whole by Timeout.
type DNS struct {
	Servers        []string // host:port of the servers to ask; empty: ResolvConf's
	ResolvConf     string   // default DefaultResolvConf
	Timeout        time.Duration
	AttemptTimeout time.Duration
}

// TXTAnswer is what a server said about a name's TXT records.
type TXTAnswer struct {
	Texts []string // each record's character-strings joined, in presentation form
	// Validated reports the AD bit: the server says it validated the
	// answer with DNSSEC. It is worth what the path to that server is
	// worth (a resolver on the local host, or one reached over a network
	// the user trusts).
	Validated  bool
	AnsweredBy string // the DNS server that answered
}

// Domain is a domain's flowmail record as DNS gave it.
type Domain struct {
	Name string // A-label form, lower case, no final dot
	Record
	Validated  bool   // DNSSEC-validated (the AD bit)
	AnsweredBy string // the DNS server that answered
}

// ParseServer reads a DNS server as given on the command line or in
// FLOWMAIL_DNS_SERVER: an IP address with an optional port ("192.0.2.1",
// "192.0.2.1:5353", "[2001:db8::1]:53"); 53 when no port is given.
func ParseServer(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return "", fmt.Errorf("%w: DNS server %q is not IP or IP:PORT", ErrNoResolver, clip(s))
	}
	return ap.String(), nil
}

func (c *DNS) servers() ([]string, error) {
	if len(c.Servers) > 0 {
		return c.Servers, nil
	}
	path := c.ResolvConf
	if path == "" {
		path = DefaultResolvConf
	}
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrNoResolver, path, err)
	}
	var out []string
	for _, s := range conf.Servers {
		if len(out) == maxResolvers {
			break
		}
		out = append(out, net.JoinHostPort(s, conf.Port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s lists no nameserver", ErrNoResolver, path)
	}
	return out, nil
}

// LookupDomain finds domain's flowmail record: it brings the domain to its
// A-label form, asks for the TXT records at _flowmail.<domain> and picks
// the one of version 1 (SelectRecord).
func (c *DNS) LookupDomain(ctx context.Context, domain string) (*Domain, error) {
	name, err := NormaliseDomain(domain)
	if err != nil {
		return nil, err
	}
	a, err := c.LookupTXT(ctx, TXTPrefix+name+".")
	if err != nil {
		return nil, err
	}
	r, err := SelectRecord(a.Texts)
	if err != nil {
		return nil, fmt.Errorf("%s%s (from %s): %w", TXTPrefix, name, a.AnsweredBy, err)
	}
	return &Domain{Name: name, Record: *r, Validated: a.Validated, AnsweredBy: a.AnsweredBy}, nil
}

// NormaliseDomain brings a domain to the form names carry (record.Normalise:
// IDNA lookup processing, A-label form, lower case, no final dot).
func NormaliseDomain(domain string) (string, error) {
	n, err := record.Normalise("x@" + domain)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", clip(domain), err)
	}
	return n[len("x@"):], nil
}

// LookupTXT asks for the TXT records of fqdn (with its final dot). A name
// that does not exist or has no TXT records is ErrNoRecord; a server that
// does not answer within the bounds is ErrTimeout; one that answers with
// a failure (SERVFAIL, which validating resolvers also give for answers
// that fail DNSSEC, or REFUSED) is ErrDNS when no other server answers.
func (c *DNS) LookupTXT(ctx context.Context, fqdn string) (*TXTAnswer, error) {
	servers, err := c.servers()
	if err != nil {
		return nil, err
	}
	timeout, attempt := c.Timeout, c.AttemptTimeout
	if timeout <= 0 {
		timeout = DefaultLookupTimeout
	}
	if attempt <= 0 {
		attempt = DefaultAttemptTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(fqdn), dns.TypeTXT)
	q.RecursionDesired = true
	q.AuthenticatedData = true // RFC 6840 5.7: we want the AD bit back
	q.SetEdns0(ednsSize, false)

	var refused, silent error // the last failure a server answered with; the last without answer
	for _, proto := range []string{"udp", "udp", "tcp"} {
		for _, server := range servers {
			if ctx.Err() != nil {
				break
			}
			r, err := exchange(ctx, q, server, proto, attempt)
			if err == nil && r.Truncated && proto == "udp" {
				r, err = exchange(ctx, q, server, "tcp", attempt)
			}
			if err != nil {
				silent = fmt.Errorf("%s over %s: %v", server, proto, err)
				continue
			}
			a, err := readAnswer(q, r, server)
			if errors.Is(err, ErrDNS) {
				refused = err // ask the next server; report this if none answers better
				continue
			}
			return a, err
		}
		if refused != nil {
			break // the servers answer, and they answer no: asking again changes nothing
		}
	}
	switch {
	case refused != nil:
		return nil, fmt.Errorf("%s: %w", fqdn, refused)
	case parent.Err() != nil:
		return nil, fmt.Errorf("looking up %s: %w", fqdn, parent.Err())
	case silent == nil:
		silent = ctx.Err()
	}
	return nil, fmt.Errorf("%w: %s: none of %s answered within %v (last: %v)", ErrTimeout, strings.TrimSuffix(fqdn, "."), strings.Join(servers, ", "), timeout, silent)
}

// exchange sends one query and waits at most attempt for its answer; a
// cancelled ctx ends the wait at once.
func exchange(ctx context.Context, q *dns.Msg, server, proto string, attempt time.Duration) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, attempt)
	defer cancel()
	cl := &dns.Client{Net: proto, Timeout: attempt}
	conn, err := cl.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	m := q.Copy()
	m.Id = dns.Id()
	r, _, err := cl.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// readAnswer checks that r answers q and collects its TXT records,
// following CNAMEs inside the answer.
func readAnswer(q, r *dns.Msg, server string) (*TXTAnswer, error) {
	name := q.Question[0].Name
	if !r.Response || r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 ||
		!strings.EqualFold(r.Question[0].Name, name) || r.Question[0].Qtype != dns.TypeTXT || r.Question[0].Qclass != dns.ClassINET {
		return nil, fmt.Errorf("%w: %s answered another question", ErrDNS, server)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, fmt.Errorf("%w: %s does not exist (NXDOMAIN from %s)", ErrNoRecord, strings.TrimSuffix(name, "."), server)
	default:
		return nil, fmt.Errorf("%w: %s answered %s", ErrDNS, server, rcodeName(r.Rcode))
	}
	target := name
	for range maxCNAMEs {
		next := ""
		for _, rr := range r.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, target) {
				next = c.Target
			}
		}
		if next == "" {
			break
		}
		target = next
	}
	a := &TXTAnswer{Validated: r.AuthenticatedData, AnsweredBy: server}
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok && t.Hdr.Class == dns.ClassINET && strings.EqualFold(t.Hdr.Name, target) {
			a.Texts = append(a.Texts, strings.Join(t.Txt, ""))
		}
	}
	if len(a.Texts) == 0 {
		return nil, fmt.Errorf("%w: %s has no TXT record (from %s)", ErrNoRecord, strings.TrimSuffix(name, "."), server)
	}
	return a, nil
}

func rcodeName(c int) string {
	if s, ok := dns.RcodeToString[c]; ok {
		return s
	}
	return "rcode " + strconv.Itoa(c)
}
