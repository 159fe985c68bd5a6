package naming

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowmail/flowmail/record"
)

// nsd is NLnet Labs' authoritative DNS server, started by the test on a
// loopback port with a zone file the test writes. It stops with the test
// (t.Cleanup), and with the test process if that dies (Pdeathsig).
type nsd struct {
	addr string
	cmd  *exec.Cmd
	done chan error
}

// startNSD serves zone (the records of example.test, one per line, as a
// zone file holds them) and returns once nsd says it started. It skips
// the test when nsd is not installed: .ci/run installs it.
func startNSD(t *testing.T, zone string) *nsd {
	t.Helper()
	bin, err := exec.LookPath("nsd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nsd"); serr != nil {
			t.Skip("nsd is not installed (Debian package nsd; .ci/run installs it with apt-get), so the test against a real DNS server cannot run")
		}
		bin = "/usr/sbin/nsd"
	}
	dir := t.TempDir()
	head := "$ORIGIN example.test.\n$TTL 60\n@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60\n@ IN NS ns.example.test.\nns IN A 127.0.0.1\n"
	if err := os.WriteFile(filepath.Join(dir, "example.test.zone"), []byte(head+zone), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 { // the free port we picked may be taken before nsd binds it
		pc, l := listenPair(t)
		addr := pc.LocalAddr().String()
		pc.Close()
		l.Close()
		s, err := runNSD(t, bin, dir, addr)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("nsd did not start: %v", lastErr)
	return nil
}

func runNSD(t *testing.T, bin, dir, addr string) (*nsd, error) {
	host, port, _ := strings.Cut(addr, ":")
	conf := fmt.Sprintf(`server:
  ip-address: %s
  port: %s
  username: ""
  chroot: ""
  zonesdir: %q
  zonelistfile: %q
  database: ""
  pidfile: %q
  xfrdfile: %q
  xfrdir: %q
  server-count: 1
  do-ip6: no
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: example.test
  zonefile: "example.test.zone"
`, host, port, dir, filepath.Join(dir, "zone.list"), filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"), dir)
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-d", "-c", confPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &nsd{addr: addr, cmd: cmd, done: make(chan error, 1)}
	// nsd binds its sockets, reads the zone, forks its server, then logs
	// "nsd started": that line is the event to wait for.
	started := make(chan struct{})
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if log.Len() < 1<<16 {
				log.WriteString(line + "\n")
			}
			if strings.Contains(line, "nsd started") {
				close(started)
			}
		}
		io.Copy(io.Discard, stderr)
		s.done <- cmd.Wait()
	}()
	ctx := hangGuard(t)
	select {
	case <-started:
	case err := <-s.done:
		return nil, fmt.Errorf("nsd exited (%v): %s", err, log.String())
	case <-ctx.Done():
		cmd.Process.Kill()
		<-s.done
		return nil, fmt.Errorf("nsd did not start: %s", log.String())
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(time.Minute): // a hang guard, not a measure
			cmd.Process.Kill()
			<-s.done
		}
	})
	return s, nil
}

// TestAgainstNSD resolves names through a real authoritative server: the
// record `domain init` prints, loaded from a zone file; a record split in
// two strings; one too big for UDP (truncated, asked again over TCP); and
// each refusal.
func TestAgainstNSD(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk := newDomainKey(t, src)
	rec := Record{Keys: []Key{pub(dk)}, At: "mail.example.test:4433"}
	text := rec.Text()
	filler := ""
	for i := range 8 { // 8 records of 200 bytes: more than EDNS's 1232 over UDP
		filler += fmt.Sprintf("_flowmail.big.example.test. IN TXT \"filler-%d %s\"\n", i, strings.Repeat("x", 190))
	}
	zone := rec.ZoneLine("example.test") + "\n" +
		rec.ZoneLine("big.example.test") + "\n" + filler +
		"_flowmail.split.example.test. IN TXT \"" + text[:30] + "\" \"" + text[30:] + "\"\n" +
		"_flowmail.two.example.test. IN TXT \"" + text + "\"\n" +
		"_flowmail.two.example.test. IN TXT \"v=fm1; k=" + FormatKey(keyA) + "\"\n" +
		"_flowmail.bad.example.test. IN TXT \"v=fm1; k=" + FormatKey(pub(dk))[:40] + "\"\n" +
		"_flowmail.future.example.test. IN TXT \"v=fm2; k=x\"\n" +
		"_flowmail.nodata.example.test. IN A 127.0.0.1\n"
	s := startNSD(t, zone)
	c := &DNS{Servers: []string{s.addr}, Timeout: time.Minute, AttemptTimeout: 10 * time.Second}
	ctx := hangGuard(t)
	for _, name := range []string{"example.test", "big.example.test", "split.example.test"} {
		d, err := c.LookupDomain(ctx, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if d.Text() != text || d.Validated {
			t.Errorf("%s: %q, validated %v", name, d.Text(), d.Validated)
		}
	}
	for name, want := range map[string]error{
		"missing.example.test": ErrNoRecord,
		"nodata.example.test":  ErrNoRecord,
		"two.example.test":     ErrConflict,
		"bad.example.test":     ErrMalformed,
		"future.example.test":  ErrVersion,
	} {
		if _, err := c.LookupDomain(ctx, name); !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	// The whole resolution, DNS from nsd.
	w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{}))
	res := &Resolver{DNS: c, DHT: w.dht}
	b, err := res.Resolve(ctx, "Alice@Example.Test", t0.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Address() != w.alice.id.ID() || b.Domain.At != "mail.example.test:4433" {
		t.Fatalf("resolved to %+v", b)
	}
}
