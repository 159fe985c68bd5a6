package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/record"
)

// yesFlag lets scripts consent to following a signed move
// (docs/PROTOCOL.md 15.5) without a prompt.
var yesFlag = &cli.BoolFlag{Name: "yes", Usage: "follow a contact's signed move to its new address (and update your contacts) without asking"}

// errMoveNotFollowed is a move the user did not agree to follow.
var errMoveNotFollowed = errors.New("move not followed")

// followMove is what a client does with a recipient whose key log ends
// in a move (15.5): the moved state must follow the pin of the old
// address (the move is signed by the pinned identity's committed key),
// the new address's key log must check out (record.CheckMove: co-signed
// by a key it had, not itself revoked, moved or forked), and the user
// must agree (--yes, or y at a prompt on a terminal). Then every contact
// name of the old address names the new one, and the new address is
// pinned. It returns the new address's current key and state; the book
// is changed in memory, the caller saves it.
func followMove(ctx context.Context, c *cli.Context, s *streams, net delivery.Network, logs delivery.KeyLogs, book *contactBook, name string, moved record.KeyState) (*identity.PublicKey, record.KeyState, error) {
	if _, err := checkPin(book, name, moved, s.err); err != nil {
		return nil, moved, err
	}
	from, to := identity.FormatAddress(moved.Address), identity.FormatAddress(moved.MovedTo)
	k, st, err := delivery.ResolveRecipient(ctx, net, logs, moved.MovedTo)
	if err == nil {
		err = record.CheckMove(moved, st)
	}
	if err != nil {
		return nil, st, fmt.Errorf("%s moved to %s, but the new address does not check out, so the move is not followed: %w", name, to, err)
	}
	q := fmt.Sprintf("%s moved to %s (the move is signed by both identities). Follow it, and send there from now on?", name, to)
	if !confirm(c, s, q) {
		return nil, st, fmt.Errorf("%w: %s moved to %s; nothing was sent. To follow it, run again with --yes (or answer y), "+
			"or send to the new address yourself (%w)", errMoveNotFollowed, name, to, record.ErrMoved)
	}
	var renamed []string
	for n, a := range book.Contacts {
		if a == from {
			book.Contacts[n] = to
			renamed = append(renamed, n)
		}
	}
	sort.Strings(renamed)
	if _, err := checkPin(book, name, st, s.err); err != nil {
		return nil, st, err
	}
	if len(renamed) > 0 {
		fmt.Fprintf(s.err, "note: followed the move of %s to %s; contact %s now names the new address\n", from, to, strings.Join(renamed, ", "))
	} else {
		fmt.Fprintf(s.err, "note: followed the move of %s to %s\n", from, to)
	}
	return k, st, nil
}

// confirm asks q on a terminal, or takes --yes; without either it says
// no.
func confirm(c *cli.Context, s *streams, q string) bool {
	if c.Bool("yes") {
		return true
	}
	f, ok := s.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false
	}
	fmt.Fprintf(s.err, "%s [y/N] ", q)
	line, err := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

// resolveContact resolves addr for a contact (send, contacts add): its
// current key, following a signed move when the user agrees, and checks
// the state against the pin. It returns the key, the address mail goes to
// (the new one after a move) and whether the book changed.
func resolveContact(ctx context.Context, c *cli.Context, s *streams, net delivery.Network, logs delivery.KeyLogs, book *contactBook, name string, addr block.ID) (*identity.PublicKey, block.ID, bool, error) {
	k, st, err := delivery.ResolveRecipient(ctx, net, logs, addr)
	if errors.Is(err, record.ErrMoved) && st.Moved {
		k, st, err = followMove(ctx, c, s, net, logs, book, name, st)
		if err != nil {
			return nil, addr, false, err
		}
		return k, st.Address, true, nil
	}
	if err != nil {
		return nil, addr, false, recipientAdvice(name, st, err)
	}
	changed, err := checkPin(book, name, st, s.err)
	if err != nil {
		return nil, addr, false, err
	}
	return k, addr, changed, nil
}
