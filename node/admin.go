package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminServer answers /metrics (Prometheus) and /status (JSON) on a
// loopback address. It is for the operator of this machine only.
type adminServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// listenAdmin listens on addr, a loopback IP:port (WithDefaults checked
// it): metrics and status reveal peers and storage and are not for the
// network. Start calls it first, so a taken port fails before the node
// joins anything.
func listenAdmin(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%w: %s: %w", ErrAdminInUse, addr, err)
	}
	if err != nil {
		return nil, fmt.Errorf("node: admin endpoint: %w", err)
	}
	return ln, nil
}

// serveAdmin answers on ln until close.
func serveAdmin(ln net.Listener, m *metrics, status func() Status) *adminServer {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status())
	})
	a := &adminServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			MaxHeaderBytes:    16 << 10,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		_ = a.srv.Serve(ln) // returns ErrServerClosed on Close
	}()
	return a
}

// Addr is where the admin endpoint listens.
func (a *adminServer) Addr() string { return a.ln.Addr().String() }

func (a *adminServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	<-a.done
	return err
}

// FetchStatus asks a running node's admin endpoint for its status.
// The caller bounds the wait with ctx.
func FetchStatus(ctx context.Context, addr string) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoAdmin, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node at %s answered %s", addr, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&st); err != nil {
		return nil, fmt.Errorf("node at %s sent an unreadable status: %w", addr, err)
	}
	return &st, nil
}
