package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// dialTimeout and sessionTimeout bound one SMTP delivery attempt.
const (
	dialTimeout    = time.Minute
	sessionTimeout = 10 * time.Minute
)

// result is one recipient's outcome.
type result struct {
	rcpt      string
	err       error
	permanent bool // a 5xx: bounce now
}

// deliver sends msg from mailFrom to rcpts: all through the smarthost,
// or per domain through its MX hosts in order of preference (RFC 5321
// 5.1; the domain itself when it has no MX).
func (g *Gateway) deliver(ctx context.Context, mailFrom string, rcpts []string, msg []byte) []result {
	if g.cfg.Smarthost != "" {
		return g.transaction(ctx, []string{g.cfg.Smarthost}, mailFrom, rcpts, msg)
	}
	byDomain := map[string][]string{}
	for _, r := range rcpts {
		_, d, _ := strings.Cut(r, "@")
		d = lower(d)
		byDomain[d] = append(byDomain[d], r)
	}
	var out []result
	for d, list := range byDomain {
		hosts, err := g.mxHosts(ctx, d)
		if err != nil {
			perm := errors.Is(err, errNoMailHost)
			for _, r := range list {
				out = append(out, result{rcpt: r, err: err, permanent: perm})
			}
			continue
		}
		out = append(out, g.transaction(ctx, hosts, mailFrom, list, msg)...)
	}
	return out
}

var errNoMailHost = errors.New("the domain takes no mail")

// mxHosts lists host:port for d's MX records, best first.
func (g *Gateway) mxHosts(ctx context.Context, d string) ([]string, error) {
	port := g.cfg.MXPort
	if port == 0 {
		port = 25
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	mx, err := g.cfg.DNS.LookupMX(lctx, d)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		mx, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up the MX of %s: %w", d, err)
	}
	sort.SliceStable(mx, func(i, j int) bool { return mx[i].Pref < mx[j].Pref })
	var hosts []string
	for _, m := range mx {
		h := strings.TrimSuffix(m.Host, ".")
		if h == "" { // RFC 7505 null MX
			return nil, fmt.Errorf("%w: %s publishes a null MX", errNoMailHost, d)
		}
		hosts = append(hosts, net.JoinHostPort(h, strconv.Itoa(port)))
	}
	if len(hosts) == 0 {
		hosts = []string{net.JoinHostPort(d, strconv.Itoa(port))}
	}
	return hosts, nil
}

// transaction tries the hosts in order until one answers, and sends the
// mail there to every recipient it takes.
func (g *Gateway) transaction(ctx context.Context, hosts []string, mailFrom string, rcpts []string, msg []byte) []result {
	var err error
	for _, h := range hosts {
		var out []result
		out, err = g.sendTo(ctx, h, mailFrom, rcpts, msg)
		if err == nil {
			return out
		}
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code >= 500 {
			break // a host that answered refused it: the others would too
		}
	}
	out := make([]result, len(rcpts))
	var se *smtp.SMTPError
	perm := errors.As(err, &se) && se.Code >= 500
	for i, r := range rcpts {
		out[i] = result{rcpt: r, err: err, permanent: perm}
	}
	return out
}

// sendTo runs one SMTP session. An error is for the whole transaction;
// per-recipient refusals are in the results.
func (g *Gateway) sendTo(ctx context.Context, host, mailFrom string, rcpts []string, msg []byte) ([]result, error) {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	c, err := g.dialSMTP(ctx, host, false)
	if err != nil {
		return nil, err
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		// go-smtp starts TLS only on a new connection: the first one
		// asked whether the server offers it.
		c.Close()
		if c, err = g.dialSMTP(ctx, host, true); err != nil {
			return nil, err
		}
	}
	defer c.Close()
	if err := c.Mail(mailFrom, &smtp.MailOptions{Size: int64(len(msg))}); err != nil {
		return nil, err
	}
	var out []result
	var took []string
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			var se *smtp.SMTPError
			out = append(out, result{rcpt: r, err: err, permanent: errors.As(err, &se) && se.Code >= 500})
			continue
		}
		took = append(took, r)
	}
	if len(took) == 0 {
		c.Quit()
		return out, nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(msg); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	c.Quit()
	for _, r := range took {
		out = append(out, result{rcpt: r})
	}
	return out, nil
}

// dialSMTP connects and greets; with startTLS, it starts TLS first,
// opportunistically (RFC 7435), as MTAs relay between each other:
// encrypted against watchers, not authenticated.
func (g *Gateway) dialSMTP(ctx context.Context, host string, startTLS bool) (*smtp.Client, error) {
	conn, err := g.dial(ctx, host)
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { conn.Close() }) // sendTo's ctx ends when it returns
	var c *smtp.Client
	if startTLS {
		hostname, _, _ := net.SplitHostPort(host)
		if c, err = smtp.NewClientStartTLS(conn, &tls.Config{ServerName: hostname, InsecureSkipVerify: true}); err != nil {
			conn.Close()
			return nil, err
		}
	} else {
		c = smtp.NewClient(conn)
	}
	if err := c.Hello(g.cfg.Hostname); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dial connects to host:port, its name resolved through Config.DNS,
// trying each address in turn.
func (g *Gateway) dial(ctx context.Context, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: dialTimeout}
	if net.ParseIP(host) != nil {
		return d.DialContext(ctx, "tcp", hostport)
	}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	addrs, err := g.cfg.DNS.LookupIPAddr(lctx, host)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", host, err)
	}
	for _, a := range addrs {
		var c net.Conn
		if c, err = d.DialContext(ctx, "tcp", net.JoinHostPort(a.IP.String(), port)); err == nil {
			return c, nil
		}
	}
	if err == nil {
		err = fmt.Errorf("%s has no address", host)
	}
	return nil, err
}

// replyText is an SMTP reply as a bounce quotes it.
func replyText(err error) string {
	s := oneLine(err)
	if len(s) > MaxSMTPReply {
		s = s[:MaxSMTPReply]
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte("?")))
}
