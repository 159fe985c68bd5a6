package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/node"
	"github.com/flowmail/flowmail/record"
)

// keptCerts lists the certificates a domain owner keeps in home
// (<home>/domains/DOMAIN/LOCAL.cert, certPath): the newest version issued
// of each name. A file that does not read as a certificate is logged and
// left out, so one bad file does not stop the others.
func keptCerts(home string, log *slog.Logger) ([]*record.Record, error) {
	paths, err := filepath.Glob(filepath.Join(home, "domains", "*", "*.cert"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []*record.Record
	for _, p := range paths {
		r, err := readCertFile(p)
		if err != nil {
			log.Warn("domain: a kept certificate does not read", "file", p, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// hasDomains reports whether home holds a domain's certificates.
func hasDomains(home string) bool {
	es, err := os.ReadDir(filepath.Join(home, "domains"))
	if err != nil {
		return false
	}
	for _, e := range es {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			return true
		}
	}
	return false
}

// startCertRepublisher keeps the certificates kept in home alive in the
// network while the node runs (docs/PROTOCOL.md 19.6; naming.Republisher).
// It returns the function that stops it and waits; without kept
// certificates (or a DHT that stores records) it starts nothing. Each
// round's outcome also goes to done when it is set (tests).
func startCertRepublisher(ctx context.Context, home string, n *node.Node, log *slog.Logger, done func(naming.Round, error)) func() {
	if !hasDomains(home) {
		return func() {}
	}
	rd, err := recordsOf(n)
	if err != nil {
		log.Warn("domain: not republishing certificates", "err", err)
		return func() {}
	}
	r := &naming.Republisher{Certs: func() ([]*record.Record, error) { return keptCerts(home, log) }, DHT: rd, Log: log}
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.Run(ctx, func(rd naming.Round, err error) {
			if err == nil && len(rd.Stored)+len(rd.Failed) > 0 {
				log.Info("domain: certificates republished", "stored", len(rd.Stored), "failed", len(rd.Failed), "waiting", rd.Waiting)
			}
			if done != nil {
				done(rd, err)
			}
		})
	}()
	return func() {
		cancel()
		<-stopped
	}
}

// errNoKeptCerts: domain publish --all in a home that issued nothing.
var errNoKeptCerts = errors.New("this home keeps no certificates (they are kept in <home>/domains/DOMAIN/ by `domain sign`)")
