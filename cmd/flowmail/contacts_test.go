package main

import (
	"strings"
	"testing"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
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
