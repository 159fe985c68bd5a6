package naming

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// answer is how the loopback server answers one name.
type answer struct {
	txt       [][]string // one TXT record per entry, its character-strings
	rcode     int
	ad        bool   // set the AD bit
	truncate  bool   // over UDP, answer empty with TC set
	cname     string // answer with a CNAME to this name (plus its records)
	wrongName bool   // answer a question that was not asked
}

// dnsServer serves a table of names over UDP and TCP on one loopback
// port, with miekg/dns: a unit-test stand-in for a resolver.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	zone map[string]answer // lower-case FQDN
	seen []string          // "udp name" or "tcp name", in order
}

func startDNS(t *testing.T, zone map[string]answer) *dnsServer {
	t.Helper()
	s := &dnsServer{zone: map[string]answer{}}
	for k, v := range zone {
		s.zone[strings.ToLower(dns.Fqdn(k))] = v
	}
	pc, l := listenPair(t)
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s}, {Listener: l, Handler: s}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan error, 1)
		go func() { done <- srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			srv.Shutdown()
			<-done
		})
	}
	return s
}

func (s *dnsServer) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	if len(q.Question) != 1 {
		return
	}
	name := strings.ToLower(q.Question[0].Name)
	udp := w.LocalAddr().Network() == "udp"
	s.mu.Lock()
	a, ok := s.zone[name]
	s.seen = append(s.seen, w.LocalAddr().Network()+" "+name)
	s.mu.Unlock()
	r := new(dns.Msg)
	r.SetReply(q)
	r.AuthenticatedData = a.ad
	switch {
	case !ok:
		r.Rcode = dns.RcodeNameError
	case a.rcode != 0:
		r.Rcode = a.rcode
	case a.truncate && udp:
		r.Truncated = true
	default:
		owner := q.Question[0].Name
		if a.wrongName {
			r.Question[0].Name = "other." + owner
		}
		if a.cname != "" {
			r.Answer = append(r.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: dns.Fqdn(a.cname)})
			owner = dns.Fqdn(a.cname)
		}
		for _, txt := range a.txt {
			r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: txt})
		}
	}
	w.WriteMsg(r)
}

func (s *dnsServer) queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// silentServer takes DNS queries over UDP and TCP on one loopback port
// and never answers: a resolver that is down or filtered. The channel
// ticks when a query arrives over UDP.
func silentServer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	pc, l := listenPair(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(2)
	got := make(chan struct{}, 1)
	go func() { // read and drop
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	go func() { // accept and hold
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})
	return pc.LocalAddr().String(), got
}

// listenPair listens on one loopback port over UDP and TCP, as a DNS
// server does.
func listenPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 { // the UDP port may be taken over TCP
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l
		}
		pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}
