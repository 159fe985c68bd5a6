package node

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// metrics are one node's Prometheus collectors, on the node's own
// registry so two nodes in one process (testnets, tests) never collide.
type metrics struct {
	reg *prometheus.Registry

	rpcOut   *prometheus.HistogramVec // by message type and outcome
	rpcIn    *prometheus.HistogramVec
	ops      *prometheus.CounterVec // node API: put/get/list/delete by outcome
	bytesOut prometheus.Counter
	bytesIn  prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 16) // 0.5 ms to 16 s
	m.rpcOut = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flowmail_rpc_client_duration_seconds", Help: "Requests this node sent, by message type and outcome.", Buckets: buckets,
	}, []string{"type", "outcome"})
	m.rpcIn = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "flowmail_rpc_server_duration_seconds", Help: "Requests this node answered, by message type.", Buckets: buckets,
	}, []string{"type"})
	m.ops = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flowmail_operations_total", Help: "Puts, gets, lists and deletes the node ran for its own user or itself (not for peers), by outcome.",
	}, []string{"op", "outcome"})
	m.bytesOut = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowmail_rpc_sent_bytes_total", Help: "Request payload bytes sent."})
	m.bytesIn = prometheus.NewCounter(prometheus.CounterOpts{Name: "flowmail_rpc_received_bytes_total", Help: "Request payload bytes received."})
	// Every series of the counter exists from the start, at zero: a
	// series that appears only after its first event reads as missing
	// to the operator, and rate() needs the zero.
	for _, op := range []string{"put", "get", "list", "delete"} {
		for _, o := range []string{"ok", "timeout", "cancelled", "not_found", "incomplete", "error"} {
			m.ops.WithLabelValues(op, o)
		}
	}
	m.reg.MustRegister(m.rpcOut, m.rpcIn, m.ops, m.bytesOut, m.bytesIn,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// gauge registers a gauge read from fn at scrape time.
func (m *metrics) gauge(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// labelled registers one labelled series of a gauge read at scrape time.
func (m *metrics) labelled(name, help, label, value string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{label: value}}, fn))
}

// counter registers a counter read from fn at scrape time; fn must never
// decrease.
func (m *metrics) counter(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// observeOp counts one node API operation.
func (m *metrics) observeOp(op string, err error) {
	m.ops.WithLabelValues(op, outcome(err)).Inc()
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled" // the caller gave up (shutdown, enough shards): not the peer's fault
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, kademlia.ErrListIncomplete):
		return "incomplete"
	}
	return "error"
}

// rpcName names a request by its first byte (docs/PROTOCOL.md section 8),
// keeping label cardinality fixed whatever a peer sends.
func rpcName(payload []byte) string {
	if len(payload) == 0 {
		return "empty"
	}
	switch payload[0] {
	case 0x10:
		return "ping"
	case 0x12:
		return "find_node"
	case 0x14:
		return "find_block"
	case 0x16:
		return "store"
	case 0x18:
		return "list"
	case 0x1a:
		return "delete"
	}
	return "other"
}

// instrumented wraps a transport so every request this node sends is
// timed and counted, without the transport or Kademlia knowing.
type instrumented struct {
	transport.Transport
	m *metrics
}

func (t instrumented) Request(ctx context.Context, c transport.Contact, req []byte) ([]byte, transport.Peer, error) {
	start := time.Now()
	resp, p, err := t.Transport.Request(ctx, c, req)
	t.m.rpcOut.WithLabelValues(rpcName(req), rpcOutcome(err)).Observe(time.Since(start).Seconds())
	t.m.bytesOut.Add(float64(len(req)))
	return resp, p, err
}

func rpcOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	case errors.Is(err, transport.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, transport.ErrHandshake), errors.Is(err, transport.ErrWrongPeer), errors.Is(err, transport.ErrWrongNetwork):
		return "refused"
	}
	return "error"
}

// instrumentHandler times every request this node answers.
func (m *metrics) instrumentHandler(h transport.Handler) transport.Handler {
	return func(ctx context.Context, from transport.Peer, req []byte) []byte {
		start := time.Now()
		resp := h(ctx, from, req)
		m.rpcIn.WithLabelValues(rpcName(req)).Observe(time.Since(start).Seconds())
		m.bytesIn.Add(float64(len(req)))
		return resp
	}
}
