package naming

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/flowmail/flowmail/record"
)

// hangGuard bounds a test that must end by itself: generous, never a
// measure of speed.
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestLookupDomain(t *testing.T) {
	good := "v=fm1; k=" + FormatKey(keyA) + "; k=" + FormatKey(keyB)
	s := startDNS(t, map[string]answer{
		"_flowmail.example.test":          {txt: [][]string{{good}}},
		"_flowmail.signed.test":           {txt: [][]string{{good}}, ad: true},
		"_flowmail.split.test":            {txt: [][]string{{good[:20], good[20:]}}},
		"_flowmail.alias.test":            {cname: "_flowmail.example.test", txt: [][]string{{good}}},
		"_flowmail.xn--bcher-kva.example": {txt: [][]string{{good}}},
		"_flowmail.noisy.test":            {txt: [][]string{{"v=spf1 -all"}, {good}}},
		"_flowmail.big.test":              {txt: [][]string{{good}}, truncate: true},
		"_flowmail.empty.test":            {},
		"_flowmail.spf.test":              {txt: [][]string{{"v=spf1 -all"}}},
		"_flowmail.two.test":              {txt: [][]string{{good}, {"v=fm1; k=" + FormatKey(keyA)}}},
		"_flowmail.bad.test":              {txt: [][]string{{"v=fm1; k=" + FormatKey(keyA)[:40]}}},
		"_flowmail.future.test":           {txt: [][]string{{"v=fm2; whatever"}}},
		"_flowmail.broken.test":           {rcode: dns.RcodeServerFailure},
		"_flowmail.refusing.test":         {rcode: dns.RcodeRefused},
		"_flowmail.confused.test":         {txt: [][]string{{good}}, wrongName: true},
		"_flowmail.quoted.test":           {txt: [][]string{{`v=fm1; k=` + FormatKey(keyA) + `; x="y"`}}},
	})
	c := &DNS{Servers: []string{s.addr}}
	ctx := hangGuard(t)
	for _, name := range []string{"example.test", "Example.TEST.", "signed.test", "split.test", "alias.test", "bücher.example", "noisy.test", "big.test"} {
		d, err := c.LookupDomain(ctx, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(d.Keys) != 2 || d.Keys[0] != keyA || d.Keys[1] != keyB {
			t.Errorf("%s: keys %v", name, d.Keys)
		}
		if d.Validated != (name == "signed.test") {
			t.Errorf("%s: validated %v", name, d.Validated)
		}
		if d.AnsweredBy != s.addr {
			t.Errorf("%s: server %q", name, d.AnsweredBy)
		}
	}
	if d, _ := c.LookupDomain(ctx, "bücher.example"); d == nil || d.Name != "xn--bcher-kva.example" {
		t.Errorf("Unicode domain: %+v", d)
	}
	q := s.queries()
	if !slices.Contains(q, "udp _flowmail.big.test.") || !slices.Contains(q, "tcp _flowmail.big.test.") {
		t.Errorf("a truncated answer was not asked again over TCP: %v", q)
	}
	for name, want := range map[string]error{
		"missing.test":  ErrNoRecord,
		"empty.test":    ErrNoRecord,
		"spf.test":      ErrNoRecord,
		"two.test":      ErrConflict,
		"bad.test":      ErrMalformed,
		"quoted.test":   ErrMalformed,
		"future.test":   ErrVersion,
		"broken.test":   ErrDNS,
		"refusing.test": ErrDNS,
		"confused.test": ErrDNS,
		"localhost":     record.ErrName, // one label: not a name
		"[192.0.2.1]":   record.ErrName,
	} {
		_, err := c.LookupDomain(ctx, name)
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
}

// TestLookupGivesUpOnASilentServer: a server that takes queries and never
// answers ends the lookup with ErrTimeout, after UDP twice and TCP once.
func TestLookupGivesUpOnASilentServer(t *testing.T) {
	addr, _ := silentServer(t)
	c := &DNS{Servers: []string{addr}, Timeout: 3 * time.Second, AttemptTimeout: 200 * time.Millisecond}
	_, err := c.LookupDomain(hangGuard(t), "example.test")
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "tcp") {
		t.Errorf("error does not name the server and the last try: %v", err)
	}
}

// TestLookupAsksTheNextServer: the first server is silent, the second
// answers.
func TestLookupAsksTheNextServer(t *testing.T) {
	silent, _ := silentServer(t)
	s := startDNS(t, map[string]answer{"_flowmail.example.test": {txt: [][]string{{"v=fm1; k=" + FormatKey(keyA)}}}})
	c := &DNS{Servers: []string{silent, s.addr}, AttemptTimeout: 200 * time.Millisecond, Timeout: time.Minute}
	d, err := c.LookupDomain(hangGuard(t), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if d.AnsweredBy != s.addr {
		t.Fatalf("answered by %s", d.AnsweredBy)
	}
}

// TestLookupStopsWhenCancelled: a cancelled context ends the wait for a
// silent server at once, whatever the timeouts.
func TestLookupStopsWhenCancelled(t *testing.T) {
	addr, asked := silentServer(t)
	c := &DNS{Servers: []string{addr}, Timeout: time.Hour, AttemptTimeout: time.Hour}
	// No deadline on the lookup's context: only the cancellation can end it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.LookupDomain(ctx, "example.test")
		done <- err
	}()
	guard := hangGuard(t)
	select {
	case <-asked: // the query is out: the lookup now waits for its answer
	case <-guard.Done():
		t.Fatal("the query never reached the server")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	case <-guard.Done():
		t.Fatal("the lookup still waits for its answer long after it was cancelled")
	}
}

func TestServersFromResolvConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# comment\nsearch example.test\nnameserver 192.0.2.1\nnameserver 2001:db8::53\nnameserver 192.0.2.2\nnameserver 192.0.2.3\noptions ndots:1\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := (&DNS{ResolvConf: path}).servers()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1:53", "[2001:db8::53]:53", "192.0.2.2:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if err := os.WriteFile(path, []byte("search example.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&DNS{ResolvConf: path}).servers(); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("no nameserver: %v", err)
	}
	if _, err := (&DNS{ResolvConf: filepath.Join(t.TempDir(), "none")}).servers(); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("no file: %v", err)
	}
}
