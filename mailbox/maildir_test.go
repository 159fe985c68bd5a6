package mailbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowmail/flowmail/internal/testseed"
)

// TestDeliveryWritesLF: whatever pieces the signed bytes come in, a CR
// that ends one piece included, the file holds them with each CRLF
// turned into LF, and nothing else changed.
func TestDeliveryWritesLF(t *testing.T) {
	msg := []byte("From: a\r\nSubject: b\r\n\r\nline one\r\nbare LF\nbare CR\rend\r\n\r\r\n\r")
	want := []byte("From: a\nSubject: b\n\nline one\nbare LF\nbare CR\rend\n\r\n\r")
	if got := ToLF(msg); !bytes.Equal(got, want) {
		t.Fatalf("ToLF = %q", got)
	}
	r := testseed.Rand(t)
	for cut := range len(msg) + 1 {
		dir := t.TempDir()
		d, err := Maildir{Dir: dir}.Create(testNow)
		if err != nil {
			t.Fatal(err)
		}
		// Two pieces split at cut, then the rest in random small ones.
		pieces := [][]byte{msg[:cut]}
		for rest := msg[cut:]; len(rest) > 0; {
			n := 1 + r.IntN(len(rest))
			pieces, rest = append(pieces, rest[:n]), rest[n:]
		}
		for _, p := range pieces {
			if n, err := d.Write(p); err != nil || n != len(p) {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		path, err := d.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
			t.Fatalf("cut at %d: file holds %q", cut, got)
		}
		if d.Size() != int64(len(want)) {
			t.Fatalf("Size %d, file %d", d.Size(), len(want))
		}
	}
}

// TestDeliveryAbortLeavesNothing: an aborted delivery leaves no file in
// new/ or tmp/, and a finished one takes no more bytes.
func TestDeliveryAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	d, err := Maildir{Dir: dir}.Create(testNow)
	if err != nil {
		t.Fatal(err)
	}
	d.Write([]byte("half a mail\r\n"))
	d.Abort()
	for _, sub := range []string{"new", "tmp", "cur"} {
		if files, err := os.ReadDir(filepath.Join(dir, sub)); err != nil || len(files) != 0 {
			t.Fatalf("%s/: %d files, %v", sub, len(files), err)
		}
	}
	if _, err := d.Write([]byte("more")); !errors.Is(err, errClosed) {
		t.Fatalf("Write after Abort: %v", err)
	}
}

// TestOutboxKeepsAnUnsentMessage: Add files a message once; a second
// Add under the key finds it; Remove drops it with its state files.
func TestOutboxKeepsAnUnsentMessage(t *testing.T) {
	o := Outbox{Dir: filepath.Join(t.TempDir(), "outbox")}
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	if existed, err := o.Add("ab12", write("first")); err != nil || existed {
		t.Fatalf("Add: %v, %v", existed, err)
	}
	if existed, err := o.Add("ab12", write("second")); err != nil || !existed {
		t.Fatalf("second Add: %v, %v", existed, err)
	}
	if b, _ := os.ReadFile(o.Message("ab12")); string(b) != "first" {
		t.Fatalf("message holds %q", b)
	}
	boom := errors.New("disk full")
	if _, err := o.Add("cd34", func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing write: %v", err)
	}
	if _, err := os.Stat(o.Message("cd34")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a message that failed to be written was filed")
	}
	if err := os.WriteFile(o.State("ab12", "0"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.Remove("ab12"); err != nil {
		t.Fatal(err)
	}
	if files, _ := os.ReadDir(o.Dir); len(files) != 0 {
		t.Fatalf("%d files left", len(files))
	}
	if _, err := o.Add("../x", write("x")); !errors.Is(err, ErrOutboxKey) {
		t.Fatalf("bad key: %v", err)
	}
}

// TestLFWriterAnySplit writes random mixes of CR, LF and CRLF in random
// pieces and checks the file bytes (each CRLF made LF) and the size it
// reports (what CRLFReader serves from them).
func TestLFWriterAnySplit(t *testing.T) {
	rng := testseed.Rand(t)
	alphabet := []byte("a\r\n")
	for range 500 {
		in := make([]byte, rng.IntN(100))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		lw := &lfWriter{w: bw}
		for p := in; len(p) > 0; {
			k := 1 + rng.IntN(len(p))
			if _, err := lw.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		if err := lw.flush(); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		if want := bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n")); !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("%q: wrote %q, want %q", in, out.Bytes(), want)
		}
		served, _ := io.ReadAll(NewCRLFReader(bytes.NewReader(out.Bytes())))
		if lw.crlf != int64(len(served)) {
			t.Fatalf("%q: size %d, served %d bytes", in, lw.crlf, len(served))
		}
	}
}
