// Package rawquic is a plain quic-go connection on loopback, with none of
// flowmail's framing, handshake or limits: the baseline that benchmarks of
// flowmail's own transfers are measured against in the same run.
package rawquic

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

const alpn = "rawquic-baseline"

// Pipe is a client and a server connected over one QUIC connection. The
// server reads each stream to its end and answers one byte.
type Pipe struct {
	su, cu *net.UDPConn
	st, ct *quic.Transport
	ln     *quic.Listener
	conn   *quic.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open starts both ends on 127.0.0.1 and connects them.
func Open(ctx context.Context) (*Pipe, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	p := &Pipe{}
	if p.su, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	if p.cu, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		p.su.Close()
		return nil, err
	}
	p.st, p.ct = &quic.Transport{Conn: p.su}, &quic.Transport{Conn: p.cu}
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	cliTLS := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS13}
	if p.ln, err = p.st.Listen(srvTLS, &quic.Config{}); err != nil {
		p.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go p.serve(sctx)
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	defer dcancel()
	if p.conn, err = p.ct.Dial(dctx, p.su.LocalAddr(), cliTLS, &quic.Config{}); err != nil {
		p.Close()
		return nil, fmt.Errorf("rawquic: dial: %w", err)
	}
	return p, nil
}

func (p *Pipe) serve(ctx context.Context) {
	defer p.wg.Done()
	c, err := p.ln.Accept(ctx)
	if err != nil {
		return
	}
	defer c.CloseWithError(0, "")
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, s); err == nil {
			_, _ = s.Write([]byte{1})
		}
		s.Close()
	}
}

// Copy sends payload on a new stream and returns once the server has read
// all of it and answered.
func (p *Pipe) Copy(ctx context.Context, payload []byte) error {
	s, err := p.conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	if _, err := s.Write(payload); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	var ack [1]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return err
	}
	if ack[0] != 1 {
		return errors.New("rawquic: bad answer")
	}
	return nil
}

// Close stops both ends and waits for the server goroutine.
func (p *Pipe) Close() error {
	if p.conn != nil {
		p.conn.CloseWithError(0, "")
	}
	if p.cancel != nil {
		p.cancel()
	}
	if p.ln != nil {
		p.ln.Close()
	}
	p.wg.Wait()
	for _, t := range []*quic.Transport{p.ct, p.st} {
		if t != nil {
			t.Close()
		}
	}
	for _, u := range []*net.UDPConn{p.cu, p.su} {
		if u != nil {
			u.Close()
		}
	}
	return nil
}

func selfSigned() (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}
