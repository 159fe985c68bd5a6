package main

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
)

func TestContactsAddListRemove(t *testing.T) {
	home := t.TempDir()
	addr := identity.FormatAddress(block.Sum([]byte("bob")))
	if _, _, err := runCLI(t, "--home", home, "contacts", "add", "Bob", addr); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "--home", home, "contacts", "list")
	if err != nil || !strings.Contains(out, "bob") || !strings.Contains(out, addr) {
		t.Fatalf("list: %q %v", out, err)
	}
	id, err := resolveRecipient(home, "BOB")
	if err != nil || identity.FormatAddress(id) != addr {
		t.Fatalf("resolve bob: %v %v", id, err)
	}
	if _, err := resolveRecipient(home, addr); err != nil {
		t.Fatalf("resolve address: %v", err)
	}
	if _, _, err := runCLI(t, "--home", home, "contacts", "remove", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := resolveRecipient(home, "bob"); err == nil || !strings.Contains(err.Error(), "contacts add bob") {
		t.Fatalf("removed contact still resolves: %v", err)
	}
}

func TestContactsRejectTyposAndBadNames(t *testing.T) {
	home := t.TempDir()
	addr := identity.FormatAddress(block.Sum([]byte("bob")))
	c := byte('q')
	if addr[20] == c {
		c = 'p'
	}
	typo := addr[:20] + string(c) + addr[21:]
	if _, _, err := runCLI(t, "--home", home, "contacts", "add", "bob", typo); err == nil || !strings.Contains(err.Error(), "typo") {
		t.Fatalf("typo accepted: %v", err)
	}
	if _, _, err := runCLI(t, "--home", home, "contacts", "add", "bad name", addr); err == nil {
		t.Fatal("name with a space accepted")
	}
	if _, err := resolveRecipient(home, typo); err == nil || !strings.Contains(err.Error(), "typo") {
		t.Fatalf("typo in --to: %v", err)
	}
}

// TestAddressesAsPeoplePasteThem: --to and contacts add take an address
// alone, at flowmail.invalid in any case, and the From line of a
// delivered mail as it is.
func TestAddressesAsPeoplePasteThem(t *testing.T) {
	home := t.TempDir()
	id := block.Sum([]byte("bob"))
	addr := identity.FormatAddress(id)
	msg, err := mail.Compose(&mail.Message{From: mail.Mailbox{Name: "Bob Smith", Address: id},
		To: []mail.Mailbox{{Address: block.Sum([]byte("alice"))}}, Text: "hi", Date: time.Unix(1e9, 0)}, rand.NewChaCha8([32]byte{}))
	if err != nil {
		t.Fatal(err)
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(msg)))
	if err != nil {
		t.Fatal(err)
	}
	from := h.Get("From") // what a reader shows and a user copies
	for _, typed := range []string{addr, strings.ToUpper(addr), addr + "@flowmail.invalid", addr + "@FLOWMAIL.INVALID",
		"Bob <" + addr + "@flowmail.invalid>", from} {
		got, err := resolveRecipient(home, typed)
		if err != nil || got != id {
			t.Errorf("--to %q: %v, %v", typed, got.Short(), err)
		}
	}
	if _, _, err := runCLI(t, "--home", home, "contacts", "add", "bob", from); err != nil {
		t.Fatalf("contacts add bob %q: %v", from, err)
	}
	if got, err := resolveRecipient(home, "bob"); err != nil || got != id {
		t.Fatalf("bob added from a From line resolves to %v, %v", got.Short(), err)
	}
	if _, err := resolveRecipient(home, addr+"@example.com"); err == nil {
		t.Fatal("an address at another domain was taken for a flowmail address")
	}
}
