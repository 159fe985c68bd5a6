package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/bridge"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/testseed"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
	"github.com/flowmail/flowmail/record"
)

// TestClassifyLegacy: only "no record" for the domain makes a legacy
// address; a pinned name, DNS failures and a domain that has a record
// (for a local part that is no name) stay errors; each address counts
// once in the relay list, case-insensitively.
func TestClassifyLegacy(t *testing.T) {
	home := t.TempDir()
	id, _, err := identity.New(8, time.Now(), testseed.ChaCha8(t))
	if err != nil {
		t.Fatal(err)
	}
	book, err := loadNames(home)
	if err != nil {
		t.Fatal(err)
	}
	book.set(naming.Pin{Name: "old@gone.test", Address: id.ID()}, time.Now())
	if err := book.save(home); err != nil {
		t.Fatal(err)
	}
	r := &naming.Resolver{DNS: oneDomain{&naming.Domain{Name: "flow.test"}}, DHT: statesOnly{}}
	ctx := context.Background()
	var l legacyRecipients
	for _, c := range []struct {
		name   string
		err    error
		legacy string // the Email, "" for an error
	}{
		{"Carol@Legacy.Test", naming.ErrNoRecord, "Carol@legacy.test"},
		{"bob+news@legacy.test", record.ErrName, "bob+news@legacy.test"},
		{"bob+news@flow.test", record.ErrName, ""},
		{"old@gone.test", naming.ErrNoRecord, ""},
		{"carol@slow.test", naming.ErrTimeout, ""},
		{"carol@odd.test", naming.ErrVersion, ""},
	} {
		mb, err := l.classify(ctx, r, home, c.name, c.err)
		if mb.Email != c.legacy || (c.legacy == "") != (err != nil) {
			t.Errorf("%s (%v): %q, %v; want %q", c.name, c.err, mb.Email, err, c.legacy)
		}
		if err == nil && !l.add(mb) {
			t.Errorf("%s added twice", c.name)
		}
	}
	if l.add(mail.Mailbox{Email: "carol@LEGACY.test"}) || len(l.relay) != 2 {
		t.Errorf("relay list %v", l.relay)
	}
	_, _, err = l.gateway(ctx, nil, home, r, "")
	if !errors.Is(err, naming.ErrNoRecord) || !strings.Contains(err.Error(), "--as") || !strings.Contains(err.Error(), "Carol@legacy.test, bob+news@legacy.test") {
		t.Errorf("no --as: %v", err)
	}

	// The bridge: the same rules, as a typed error its SMTP side reads;
	// without --as, a permanent refusal naming the flag.
	var le *bridge.LegacyError
	if err := bridgeLegacy(ctx, r, home, "Carol@Legacy.Test", naming.ErrNoRecord); !errors.As(err, &le) || le.Email != "Carol@legacy.test" {
		t.Errorf("bridge, a domain without a record: %v", err)
	}
	if err := bridgeLegacy(ctx, r, home, "carol@slow.test", naming.ErrTimeout); errors.As(err, &le) || !errors.Is(err, naming.ErrTimeout) {
		t.Errorf("bridge, a DNS timeout: %v", err)
	}
	if _, err := bridgeGateway(ctx, nil, home, r, "", id); !errors.Is(err, bridge.ErrNoGateway) || !strings.Contains(err.Error(), "--as") {
		t.Errorf("bridge without --as: %v", err)
	}
	if transientName(fmt.Errorf("x: %w", naming.ErrNoCertificate)) || !transientName(fmt.Errorf("x: %w", naming.ErrTimeout)) {
		t.Error("transientName: no certificate is for a person to fix, a DNS timeout may pass")
	}
}
