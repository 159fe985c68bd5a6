package gateway

import (
	"bufio"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exim is Debian's Exim (exim4-daemon-light, installed by .ci/run), a
// real MTA on a loopback port: mail for the flowmail domain goes to the
// gateway, DKIM-signed for legacy.test; mail for legacy.test goes to a
// sink the test holds; RCPT for refuse.test is refused.
type exim struct {
	Addr string
	dir  string
}

type eximRoutes struct {
	Gateway string // host:port of the gateway's SMTP
	Sink    string // host:port of the legacy.test sink
	DKIMKey *rsa.PrivateKey
}

// startExim starts exim in the foreground (-bdf) with its configuration,
// spool and log in a t.TempDir(); t.Cleanup stops it. It skips when
// exim is not installed or the test does not run as root (exim gives
// its spool to its own user).
func startExim(t *testing.T, ctx context.Context, r eximRoutes) *exim {
	t.Helper()
	bin, err := exec.LookPath("exim4")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/exim4"); serr != nil {
			t.Skip("exim4 is not installed (Debian package exim4-daemon-light; .ci/run installs it), so the tests against a real MTA cannot run")
		}
		bin = "/usr/sbin/exim4"
	}
	if os.Geteuid() != 0 {
		t.Skip("exim's spool belongs to its own user, which needs root to set up; the tests against a real MTA run as root (CI does)")
	}
	eu, err := user.Lookup("Debian-exim")
	if err != nil {
		t.Skipf("exim's user Debian-exim is missing (%v)", err)
	}
	uid, _ := strconv.Atoi(eu.Uid)
	gid, _ := strconv.Atoi(eu.Gid)
	dir := t.TempDir()
	// exim's delivery processes run as its user: they must reach the dir.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"spool", "log"} {
		p := filepath.Join(dir, d)
		if err := os.Mkdir(p, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	der, err := x509.MarshalPKCS8PrivateKey(r.DKIMKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "dkim.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(keyFile, uid, gid); err != nil {
		t.Fatal(err)
	}
	gwHost, gwPort, _ := net.SplitHostPort(r.Gateway)
	sinkHost, sinkPort, _ := net.SplitHostPort(r.Sink)
	var lastErr error
	for range 5 { // the free port picked may be taken before exim binds it
		port := freePort(t)
		conf := fmt.Sprintf(`keep_environment =
primary_hostname = mta.test
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
pid_file_path = %[1]s/exim.pid
daemon_smtp_ports = %[2]d
local_interfaces = <; 127.0.0.1
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
message_size_limit = 50M
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  deny domains = refuse.test
       message = no such user here
  accept hosts = 127.0.0.1
  deny
begin routers
to_gateway:
  driver = manualroute
  domains = example.test
  transport = to_gateway
  route_list = * %[3]s
  self = send
to_sink:
  driver = manualroute
  domains = legacy.test
  transport = to_sink
  route_list = * %[5]s
  self = send
begin transports
to_gateway:
  driver = smtp
  port = %[4]s
  hosts_avoid_tls = *
  dkim_domain = legacy.test
  dkim_selector = sel
  dkim_private_key = %[7]s
  dkim_canon = relaxed
to_sink:
  driver = smtp
  port = %[6]s
  hosts_avoid_tls = *
begin retry
* * F,1h,5s
`, dir, port, gwHost, gwPort, sinkHost, sinkPort, keyFile)
		confFile := filepath.Join(dir, "exim.conf")
		if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		// -q5s: a queue run every 5 s retries what a transient failure
		// deferred (the gateway answers 451 when the network does not
		// take a mail), so a test waits for it rather than failing.
		cmd := exec.Command(bin, "-C", confFile, "-bdf", "-q5s")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its delivery children too
		cmd.Stderr = &logWriter{t: t}                         // exim's own complaints
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting exim: %v", err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitListening(ctx, addr, done); err != nil {
			lastErr = fmt.Errorf("%v; its log: %s", err, readLog(dir))
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			continue
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(time.Minute): // hang guard
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
			if t.Failed() {
				t.Logf("exim's log:\n%s", readLog(dir))
			}
		})
		return &exim{Addr: addr, dir: dir}
	}
	t.Fatalf("exim did not start: %v", lastErr)
	return nil
}

// waitListening waits until addr takes connections, exim exits, or ctx
// ends (the hang guard).
func waitListening(ctx context.Context, addr string, exited chan error) error {
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if strings.HasPrefix(line, "220") {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("exim exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("exim not listening on %s before the hang guard", addr)
		case <-time.After(20 * time.Millisecond): // polling a port: no other sign it is ready
		}
	}
}

func readLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "log", "mainlog"))
	p, _ := os.ReadFile(filepath.Join(dir, "log", "paniclog"))
	return string(b) + string(p)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type logWriter struct{ t *testing.T }

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSpace(string(p)))
	return len(p), nil
}
