package nsdtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is a running nsd.
type Server struct {
	Addr string // IP:PORT on 127.0.0.1, UDP and TCP
	cmd  *exec.Cmd
	done chan error
}

// Binary finds nsd, or says why it is not there.
func Binary() (string, error) {
	if bin, err := exec.LookPath("nsd"); err == nil {
		return bin, nil
	}
	if _, err := os.Stat("/usr/sbin/nsd"); err != nil {
		return "", fmt.Errorf("nsd is not installed (Debian package nsd; .ci/run installs it with apt-get): %w", err)
	}
	return "/usr/sbin/nsd", nil
}

// Start serves origin (example.test) with records (zone-file lines,
// relative names resolved against origin; SOA and NS are added) and
// returns once nsd says it started. It skips the test when nsd is not
// installed. ctx bounds the wait for nsd to start (a hang guard).
func Start(t testing.TB, ctx context.Context, origin, records string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skip(err.Error() + "; so the test against a real DNS server cannot run")
	}
	dir := t.TempDir()
	head := fmt.Sprintf("$ORIGIN %[1]s.\n$TTL 60\n@ IN SOA ns.%[1]s. admin.%[1]s. 1 3600 600 86400 60\n@ IN NS ns.%[1]s.\nns IN A 127.0.0.1\n", origin)
	if err := os.WriteFile(filepath.Join(dir, "zone"), []byte(head+records), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 5 { // the free port picked may be taken before nsd binds it
		addr, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s, err := run(t, ctx, bin, dir, origin, addr)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("nsd did not start: %v", lastErr)
	return nil
}

// freePort finds a loopback port free for both UDP and TCP.
func freePort() (string, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			l.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no loopback port free for both UDP and TCP")
}

func run(t testing.TB, ctx context.Context, bin, dir, origin, addr string) (*Server, error) {
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
  name: %s
  zonefile: "zone"
`, host, port, dir, filepath.Join(dir, "zone.list"), filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"), dir, origin)
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-d", "-c", confPath)
	// nsd goes with the test process if that dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{Addr: addr, cmd: cmd, done: make(chan error, 1)}
	// nsd binds its sockets, reads the zone, forks its server, then logs
	// "nsd started": that line is the event to wait for. The reader ends
	// when nsd does (its stderr closes), which Cleanup waits for.
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
