package naming

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

func TestDecideFirstPins(t *testing.T) {
	src := testRand(t)
	w := newWorld(t, src)
	dk := newDomainKey(t, src)
	w.dns.texts["example.test"] = []string{recordText(pub(dk))}
	w.dht.put(certify(t, "alice@example.test", dk, w.alice, record.Version{}))
	b, err := w.res.Resolve(context.Background(), "alice@example.test", t0.Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Decide(nil, b, nil)
	if d.Verdict != First || !d.Send || d.Warning != nil {
		t.Fatalf("%+v", d)
	}
	if d.Pin.Address != w.alice.id.ID() || d.Pin.Name != "alice@example.test" || len(d.Pin.DomainKeys) != 1 || d.Pin.DomainKeys[0] != pub(dk) {
		t.Fatalf("pin %+v", d.Pin)
	}
	if !strings.Contains(d.Note, "not DNSSEC-validated") {
		t.Errorf("note does not say how DNS answered: %q", d.Note)
	}
	// The same answer again changes nothing and says nothing.
	again := Decide(&d.Pin, b, nil)
	if again.Verdict != Same || !again.Send || again.Note != "" || again.Warning != nil {
		t.Fatalf("second resolution: %+v", again)
	}
}

func TestDecide(t *testing.T) {
	src := testRand(t)
	now := t0.Add(time.Hour)
	for name, tc := range map[string]struct {
		change  func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) (pinned bool)
		verdict Verdict
		send    bool
		kind    error
		pinTo   func(w *world) *person // whom the pin holds after the decision
	}{
		"alice rotates: quiet": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			w.alice.rotate(t, now, src)
			w.dht.publish(w.alice)
			return false
		}, Same, true, nil, func(w *world) *person { return w.alice }},
		"domain rolls its key over with overlap: quiet": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			w.dns.texts["example.test"] = []string{recordText(pub(k2), pub(k1))}
			w.dht.put(certify(t, "alice@example.test", k2, w.alice, record.Version{}))
			return false
		}, Same, true, nil, func(w *world) *person { return w.alice }},
		"domain key replaced without overlap: warned, still sent to the pin": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			w.dns.texts["example.test"] = []string{recordText(pub(k2))}
			w.dht.put(certify(t, "alice@example.test", k2, w.alice, record.Version{}))
			return false
		}, KeyChanged, true, ErrDomainKeyChanged, func(w *world) *person { return w.alice }},
		"domain re-binds alice to bob: refused": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			w.dht.put(certify(t, "alice@example.test", k1, w.bob, record.Version{Seq: 2, Prev: block.Sum(c1.Bytes()), NotBefore: uint64(t0.Unix()), NotAfter: uint64(t0.Add(100 * 24 * time.Hour).Unix())}))
			return true
		}, Rebound, false, ErrRebound, func(w *world) *person { return w.alice }},
		"hijacked DNS with a new key binds alice to carol: refused": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			w.dns.texts["example.test"] = []string{recordText(pub(k2))}
			w.dht.put(certify(t, "alice@example.test", k2, w.carol, record.Version{}))
			return true
		}, Rebound, false, ErrRebound, func(w *world) *person { return w.alice }},
		"alice moves to carol's address and the domain follows: quiet": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			moved, err := record.Move(w.alice.log, w.alice.next, w.carol.id, now)
			if err != nil {
				t.Fatal(err)
			}
			w.dht.put(moved)
			w.dns.texts["example.test"] = []string{recordText(pub(k2), pub(k1))}
			w.dht.put(certify(t, "alice@example.test", k2, w.carol, record.Version{}))
			return true
		}, Followed, true, nil, func(w *world) *person { return w.carol }},
		"alice moves to carol but the domain binds bob: refused": {func(t *testing.T, w *world, k1, k2 []byte, c1 *record.Record) bool {
			moved, err := record.Move(w.alice.log, w.alice.next, w.carol.id, now)
			if err != nil {
				t.Fatal(err)
			}
			w.dht.put(moved)
			w.dns.texts["example.test"] = []string{recordText(pub(k2))}
			w.dht.put(certify(t, "alice@example.test", k2, w.bob, record.Version{}))
			return true
		}, Rebound, false, ErrRebound, func(w *world) *person { return w.alice }},
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, src)
			k1, k2 := newDomainKey(t, src), newDomainKey(t, src)
			w.dns.texts["example.test"] = []string{recordText(pub(k1))}
			c1 := certify(t, "alice@example.test", k1, w.alice, record.Version{})
			w.dht.put(c1)
			first, err := w.res.Resolve(context.Background(), "alice@example.test", now, nil)
			if err != nil {
				t.Fatal(err)
			}
			pin := Decide(nil, first, nil).Pin
			resolvePinned := tc.change(t, w, k1, k2, c1)
			b, err := w.res.Resolve(context.Background(), "alice@example.test", now, pin.DomainKeys)
			if err != nil {
				t.Fatal(err)
			}
			var pinned *record.KeyState
			if resolvePinned {
				st, err := w.dht.KeyState(context.Background(), pin.Address)
				if err != nil {
					t.Fatal(err)
				}
				pinned = &st
			}
			d := Decide(&pin, b, pinned)
			if d.Verdict != tc.verdict || d.Send != tc.send {
				t.Fatalf("verdict %v, send %v; want %v, %v", d.Verdict, d.Send, tc.verdict, tc.send)
			}
			if d.Pin.Address != tc.pinTo(w).id.ID() {
				t.Fatalf("pin holds %s", identity.FormatAddress(d.Pin.Address))
			}
			if tc.kind == nil {
				if d.Warning != nil {
					t.Fatalf("unexpected warning: %v", d.Warning)
				}
				return
			}
			if d.Warning == nil || !errors.Is(d.Warning, tc.kind) {
				t.Fatalf("warning %v, want %v", d.Warning, tc.kind)
			}
			msg := d.Warning.Error()
			for _, must := range []string{"example.test", identity.FormatAddress(pin.Address), "flowmail contacts verify alice@example.test"} {
				if !strings.Contains(msg, must) {
					t.Errorf("warning does not name %q: %s", must, msg)
				}
			}
			if tc.kind == ErrRebound && !strings.Contains(msg, identity.FormatAddress(b.Address())) {
				t.Errorf("warning does not name the new address: %s", msg)
			}
			if d.Warning.KeysChanged && !strings.Contains(msg, FormatKey(pub(k2))) {
				t.Errorf("warning does not name the new key: %s", msg)
			}
			// Until the user accepts, the same answer gives the same
			// refusal; after Accept, it is the pin.
			if again := Decide(&d.Pin, b, pinned); again.Verdict != tc.verdict {
				t.Fatalf("second look: %v", again.Verdict)
			}
			accepted := Accept(b)
			if after := Decide(&accepted, b, nil); after.Verdict != Same || !after.Send || after.Warning != nil {
				t.Fatalf("after accepting: %+v", after)
			}
		})
	}
}
