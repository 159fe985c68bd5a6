package bridge

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/clock"
)

func TestPasswordIsShownAgainAndResetReplacesIt(t *testing.T) {
	dir := t.TempDir()
	id, err := identity.Generate(4, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pw, err := ShowPassword(dir, id, false, cheapArgon2)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ShowPassword(dir, id, false, cheapArgon2)
	if err != nil || again != pw || len(pw) != 24 {
		t.Fatalf("shown again: %q %v, first %q", again, err, pw)
	}
	c := &checker{dir: dir, id: id}
	if err := c.check(id.Address()+"@flowmail.invalid", pw); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := c.check(id.Address(), "nope"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.check("someone", pw); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("wrong user: %v", err)
	}
	reset, err := ShowPassword(dir, id, true, cheapArgon2)
	if err != nil || reset == pw {
		t.Fatalf("reset: %q %v", reset, err)
	}
	if err := c.check(id.Address(), pw); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("the old password after a reset: %v", err)
	}
	if err := c.check(id.Address(), reset); err != nil {
		t.Fatalf("the new password: %v", err)
	}
}

func TestLimiterCountsPerSourceAndPerAccountOnItsClock(t *testing.T) {
	clk := &clock.Offset{}
	l := newLimiter(clk)
	for range MaxFailuresPerSource {
		if d := l.wait("10.0.0.1"); d != 0 {
			t.Fatalf("limited after fewer than %d failures", MaxFailuresPerSource)
		}
		l.fail("10.0.0.1")
	}
	if d := l.wait("10.0.0.1"); d <= 0 || d > FailureWindow {
		t.Fatalf("after %d failures: wait %v", MaxFailuresPerSource, d)
	}
	if d := l.wait("10.0.0.2"); d != 0 {
		t.Fatal("another source is limited by the first one's failures")
	}
	clk.Advance(FailureWindow)
	if d := l.wait("10.0.0.1"); d != 0 {
		t.Fatalf("still limited after the window: %v", d)
	}
	// A guesser that changes address meets the account's limit.
	for i := range MaxFailuresPerAccount {
		l.fail(string(rune('a' + i)))
	}
	if d := l.wait("fresh"); d <= 0 {
		t.Fatal("the account limit does not hold")
	}
	clk.Advance(FailureWindow)
	if d := l.wait("fresh"); d != 0 {
		t.Fatalf("account still limited after the window: %v", d)
	}
}

func FuzzLoginFile(f *testing.F) {
	l := &loginFile{Generation: 2, Params: DefaultArgon2}
	f.Add(l.encode())
	f.Add([]byte("flowmail-bridge-login 1\ngeneration 0\nargon2id 8 1 1 00 00\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeLoginFile(b)
		if err != nil {
			if !errors.Is(err, ErrLoginFile) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(l.encode(), b) {
			t.Fatalf("%q decodes but encodes as %q", b, l.encode())
		}
	})
}
