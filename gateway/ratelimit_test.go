package gateway

import (
	"net"
	"testing"
	"time"
)

func TestLimiterWindows(t *testing.T) {
	l := newLimiter(3)
	t0 := time.Unix(1_800_000_000, 0)
	if ok, _ := l.take("a", 2, t0); !ok {
		t.Fatal("2 of 3 refused")
	}
	if ok, _ := l.take("a", 2, t0.Add(time.Minute)); ok {
		t.Fatal("4 of 3 taken")
	}
	if ok, _ := l.take("b", 3, t0.Add(time.Minute)); !ok {
		t.Fatal("another key shares the count")
	}
	if ok, end := l.take("a", 1, t0.Add(2*time.Minute)); !ok || !end.Equal(t0.Add(RateWindow)) {
		t.Fatalf("3 of 3 refused, or the window ends at %v", end)
	}
	if ok, _ := l.take("a", 1, t0.Add(RateWindow)); !ok {
		t.Fatal("a new window did not start")
	}
	if ok, _ := l.take("a", 1, t0); !ok {
		t.Fatal("a clock that went back kept the count")
	}
}

func TestIPGroup(t *testing.T) {
	for addr, want := range map[net.Addr]string{
		&net.TCPAddr{IP: net.ParseIP("192.0.2.77"), Port: 25}:      "192.0.2.0/24",
		&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::5"), Port: 25}: "2001:db8:1::/48",
	} {
		if got := ipGroup(addr); got != want {
			t.Errorf("%v: %s, want %s", addr, got, want)
		}
	}
}

func TestCheckNotFlowmail(t *testing.T) {
	for addr, refused := range map[string]bool{
		"alice@example.test":      true,
		"Alice@EXAMPLE.TEST":      true,
		"fm1abc@flowmail.invalid": true,
		"bob@legacy.test":         false,
		"bob@sub.example.test":    false, // another mail domain of the same owner
		"":                        false, // the null sender
		"alice@example.test.":     true,
	} {
		if got := checkNotFlowmail(lower(addr), domain) != nil; got != refused {
			t.Errorf("%q refused %v, want %v", addr, got, refused)
		}
	}
}
