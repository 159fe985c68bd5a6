package naming

import (
	"fmt"
	"slices"
	"strings"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// Pin is what a client remembers of a name (docs/PROTOCOL.md 19.4): the
// address it was bound to and the keys its domain listed, as of the last
// resolution the client accepted.
type Pin struct {
	Name       string // normalised
	Address    block.ID
	DomainKeys []Key
}

// Verdict is what a resolution means against a pin.
type Verdict int

// Verdicts.
const (
	// First: nothing was pinned; the binding is pinned as it is.
	First Verdict = iota
	// Same: the pinned address, and the domain lists a key it listed
	// before (a rollover, if the keys changed, is followed).
	Same
	// Followed: a new address that the pinned address's own key log
	// moved to (signed by both identities); the pin follows.
	Followed
	// KeyChanged: the pinned address, but the domain's keys changed
	// without overlap; mail still goes to the pinned address, with a
	// warning, until the user accepts the new keys.
	KeyChanged
	// Rebound: another address, not reached by the pinned identity's
	// own chain; sending is refused until the user accepts it.
	Rebound
)

func (v Verdict) String() string {
	return [...]string{"first", "same", "followed", "key changed", "rebound"}[v]
}

// Decision is what a client does with a resolution.
type Decision struct {
	Verdict Verdict
	// Send reports whether mail may go to Pin.Address now.
	Send bool
	// Pin is what to remember: the new pin when the change is accepted
	// on its own, the old one when it waits for the user.
	Pin Pin
	// Note is one line to tell the user, quietly ("" when nothing
	// changed).
	Note string
	// Warning is set for KeyChanged and Rebound: what changed and how to
	// check; it is an error that wraps ErrDomainKeyChanged or ErrRebound.
	Warning *Warning
}

// Decide holds a resolution b against the pin (nil: the name was never
// resolved). pinned is the state now of the pinned address, which the
// caller resolves when b binds another address (nil when it could not, or
// did not); only a move in it lets the pin follow. Decide does no I/O.
func Decide(pin *Pin, b *Binding, pinned *record.KeyState) Decision {
	now := Pin{Name: b.Name, Address: b.Address(), DomainKeys: slices.Clone(b.Domain.Keys)}
	if pin == nil {
		return Decision{Verdict: First, Send: true, Pin: now, Note: fmt.Sprintf("%s is %s: pinned (DNS %s)", b.Name, identity.FormatAddress(now.Address), validated(b.Domain))}
	}
	overlap := slices.ContainsFunc(pin.DomainKeys, b.Domain.Lists)
	warn := &Warning{Name: b.Name, Domain: b.Domain.Name, OldAddress: pin.Address, NewAddress: now.Address,
		OldKeys: pin.DomainKeys, NewKeys: now.DomainKeys, KeysChanged: !overlap, Validated: b.Domain.Validated}
	if now.Address == pin.Address {
		if !overlap {
			warn.Kind = ErrDomainKeyChanged
			return Decision{Verdict: KeyChanged, Send: true, Pin: *pin, Warning: warn}
		}
		d := Decision{Verdict: Same, Send: true, Pin: now}
		if !sameKeys(pin.DomainKeys, now.DomainKeys) {
			d.Note = fmt.Sprintf("%s's keys are now %s (a rollover: listed next to the ones seen before)", b.Domain.Name, keyList(now.DomainKeys))
		}
		return d
	}
	if pinned != nil && pinned.Address == pin.Address && record.CheckMove(*pinned, b.State) == nil {
		d := Decision{Verdict: Followed, Send: true, Pin: now,
			Note: fmt.Sprintf("%s moved from %s to %s (signed by both): pin updated", b.Name, identity.FormatAddress(pin.Address), identity.FormatAddress(now.Address))}
		if !overlap {
			// The move is the identity's own and decides where mail goes;
			// the domain's abrupt key change is still worth saying.
			warn.Kind = ErrDomainKeyChanged
			d.Warning = warn
		}
		return d
	}
	warn.Kind = ErrRebound
	return Decision{Verdict: Rebound, Send: false, Pin: *pin, Warning: warn}
}

// Accept is the pin after the user accepted a binding that Decide held
// back (KeyChanged, Rebound), having checked it out of band.
func Accept(b *Binding) Pin {
	return Pin{Name: b.Name, Address: b.Address(), DomainKeys: slices.Clone(b.Domain.Keys)}
}

// Warning says what changed about a pinned name and how to check it. It
// wraps ErrRebound or ErrDomainKeyChanged (Kind).
type Warning struct {
	Kind                   error
	Name, Domain           string
	OldAddress, NewAddress block.ID
	OldKeys, NewKeys       []Key
	KeysChanged            bool // the domain lists none of the keys seen before
	Validated              bool // the DNS answer was DNSSEC-validated
}

func (w *Warning) Unwrap() error { return w.Kind }

func (w *Warning) Error() string {
	var b strings.Builder
	old, nu := identity.FormatAddress(w.OldAddress), identity.FormatAddress(w.NewAddress)
	if w.Kind == ErrRebound {
		fmt.Fprintf(&b, "%v: %s was %s when you first used it; %s now binds it to %s, and %s did not move there (no signed move in its key log). ",
			w.Kind, w.Name, old, w.Domain, nu, old)
		fmt.Fprintf(&b, "Either %s gave the name to someone else, or someone controls %s's DNS or its key. Nothing is sent. ", w.Domain, w.Domain)
	} else {
		fmt.Fprintf(&b, "%v: %s's key is not the one it listed before, and was not listed next to it during a rollover. %s stays bound to %s (pinned), so mail goes there. ",
			w.Kind, w.Domain, w.Name, old)
	}
	if w.KeysChanged {
		fmt.Fprintf(&b, "%s listed %s; it lists %s (DNS %s). ", w.Domain, keyList(w.OldKeys), keyList(w.NewKeys), validatedText(w.Validated))
	}
	fmt.Fprintf(&b, "Check with the person by another channel: `flowmail contacts verify %s` prints the safety code to compare; accept the change only if it matches.", w.Name)
	return b.String()
}

func sameKeys(a, b []Key) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(k Key) bool { return !slices.Contains(b, k) })
}

func validated(d *Domain) string { return validatedText(d.Validated) }

func validatedText(v bool) string {
	if v {
		return "answer DNSSEC-validated"
	}
	return "answer not DNSSEC-validated"
}
