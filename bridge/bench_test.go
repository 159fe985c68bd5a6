package bridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/mailbox"
)

// Figures for the README: what serving a message over IMAP and taking
// one over SMTP cost, as ratios to the disk work they cannot avoid,
// measured in the same run. The bridge runs on a stallNet (no network:
// a send waits forever in its first Put, so the sender does not compete).

func benchIdentity(b *testing.B, n byte) *identity.Identity {
	var seed [identity.SeedSize]byte
	seed[0] = n
	id, err := identity.FromSeed(seed, 4, time.Unix(1772323200, 0))
	if err != nil {
		b.Fatal(err)
	}
	return id
}

func benchBridge(b *testing.B) (*Bridge, string, *identity.Identity) {
	me, bob := benchIdentity(b, 1), benchIdentity(b, 2)
	home, net := b.TempDir(), b.TempDir()
	if err := os.WriteFile(filepath.Join(net, bob.ID().String()), bob.Public().Block, 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := Config{
		Identity: me, Network: stallNet{net}, Maildir: filepath.Join(home, "Maildir"),
		StateDir: filepath.Join(home, "state"), Dir: filepath.Join(home, "bridge"),
		IMAPAddr: "127.0.0.1:0", SMTPAddr: "127.0.0.1:0",
		FetchInterval: time.Hour, RetryAfter: time.Hour, RescanInterval: time.Hour,
	}
	pw, err := ShowPassword(cfg.Dir, me, false, cheapArgon2)
	if err != nil {
		b.Fatal(err)
	}
	br, err := Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	return br, pw, bob
}

// benchMessage is a text mail of about n bytes in lines of 76, LF ends.
func benchMessage(from, to string, n int) []byte {
	var m bytes.Buffer
	fmt.Fprintf(&m, "From: <%s>\nTo: <%s>\nSubject: bench\nDate: Mon, 02 Mar 2026 10:00:00 +0000\n\n", from, to)
	line := strings.Repeat("x", 75) + "\n"
	for m.Len() < n {
		m.WriteString(line)
	}
	return m.Bytes()
}

// BenchmarkIMAPFetch1MiB: UID FETCH BODY[] of a 1 MiB message over a
// loopback IMAP connection ("imap"), against reading the same message
// from the store as IMAP serves it ("store", the baseline).
func BenchmarkIMAPFetch1MiB(b *testing.B) {
	br, pw, bob := benchBridge(b)
	in, err := br.store.Folder(mailbox.Inbox)
	if err != nil {
		b.Fatal(err)
	}
	msg := benchMessage(mail.HeaderAddress(bob.ID()), mail.HeaderAddress(br.me.ID()), 1<<20)
	m, err := in.Append(bytes.NewReader(msg), 0, time.Now(), 2<<20)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("store", func(b *testing.B) {
		b.SetBytes(m.Size)
		for b.Loop() {
			r, _, err := in.Open(m.UID)
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := io.Copy(io.Discard, r); n != m.Size {
				b.Fatalf("read %d of %d bytes", n, m.Size)
			}
			r.Close()
		}
	})
	b.Run("imap", func(b *testing.B) {
		c := imapLogin(b, br, pw, nil)
		if _, err := c.Select(mailbox.Inbox, nil).Wait(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(m.Size)
		for b.Loop() {
			got, err := c.Fetch(imap.UIDSetNum(imap.UID(m.UID)), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil || len(got) != 1 || len(got[0].BodySection) != 1 || int64(len(got[0].BodySection[0].Bytes)) != m.Size {
				b.Fatalf("fetch: %v", err)
			}
		}
	})
}

// BenchmarkSMTPSubmit1MiB: a 1 MiB mail submitted over loopback SMTP
// until the bridge says 250 (checked, streamed into the outbox with
// fsync, a copy filed in Sent), against writing and syncing the same
// bytes to one file ("fsync", the baseline: the least an accepted mail
// that survives a crash costs).
func BenchmarkSMTPSubmit1MiB(b *testing.B) {
	br, pw, bob := benchBridge(b)
	msg := benchMessage(mail.HeaderAddress(br.me.ID()), mail.HeaderAddress(bob.ID()), 1<<20)
	dir := b.TempDir()
	b.Run("fsync", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			f, err := os.CreateTemp(dir, "x")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(msg); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			os.Remove(f.Name())
		}
	})
	b.Run("smtp", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			if err := smtpSend(b, br, pw, []string{mail.HeaderAddress(bob.ID())}, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
