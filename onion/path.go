package onion

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"

	"github.com/flowmail/flowmail/block"
)

// ErrNoPath: the contacts do not hold Hops relays that keep the rules.
var ErrNoPath = errors.New("onion: not enough eligible relays for a path")

// PathGroup is the address group of which a path holds at most one relay:
// the /16 of an IPv4 address, the /48 of an IPv6 one (IPv4-mapped IPv6
// counts as IPv4).
func PathGroup(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 16
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// Closest returns the IDs of the k contacts closest (XOR) to target: the
// nodes that would store what is stored there, which a path avoids.
func Closest(contacts []Hop, target block.ID, k int) map[block.ID]bool {
	ids := make([]block.ID, 0, len(contacts))
	for _, c := range contacts {
		ids = append(ids, c.ID())
	}
	slices.SortFunc(ids, func(a, b block.ID) int {
		da, db := block.Xor(a, target), block.Xor(b, target)
		return slices.Compare(da[:], db[:])
	})
	ids = slices.Compact(ids)
	out := make(map[block.ID]bool, k)
	for _, id := range ids[:min(k, len(ids))] {
		out[id] = true
	}
	return out
}

// ForwardPath chooses Hops relays from contacts for a request about
// target: the guard first when it may serve (it may not when it is among
// the k closest to target or unusable), the others uniformly at random,
// never among the k closest to target, never two in one PathGroup.
func ForwardPath(rnd *mrand.Rand, contacts []Hop, target block.ID, k int, guard *Hop) ([]Hop, error) {
	return choosePath(rnd, contacts, target, k, guard, 0)
}

// ReplyPath chooses the Hops relays a reply comes back through under the
// same rules, the guard last: the relay that delivers to the client is
// the one that already knows it.
func ReplyPath(rnd *mrand.Rand, contacts []Hop, target block.ID, k int, guard *Hop) ([]Hop, error) {
	return choosePath(rnd, contacts, target, k, guard, Hops-1)
}

func choosePath(rnd *mrand.Rand, contacts []Hop, target block.ID, k int, pinned *Hop, at int) ([]Hop, error) {
	closest := Closest(contacts, target, k)
	eligible := func(h Hop) bool {
		return h.Pubkey != nil && h.Addr.IsValid() && h.Addr.Port() != 0 && !closest[h.ID()] &&
			PathGroup(h.Addr.Addr()).IsValid()
	}
	path := make([]Hop, Hops)
	used := map[netip.Prefix]bool{}
	seen := map[block.ID]bool{}
	have := make([]bool, Hops)
	if pinned != nil && eligible(*pinned) {
		path[at], have[at] = *pinned, true
		used[PathGroup(pinned.Addr.Addr())] = true
		seen[pinned.ID()] = true
	}
	// A random order of the contacts; the first eligible one of each
	// unused group fills the next free position.
	order := rnd.Perm(len(contacts))
	next := 0
	for i := range path {
		if have[i] {
			continue
		}
		for ; next < len(order); next++ {
			h := contacts[order[next]]
			g := PathGroup(h.Addr.Addr())
			if eligible(h) && !used[g] && !seen[h.ID()] {
				path[i], have[i] = h, true
				used[g], seen[h.ID()] = true, true
				next++
				break
			}
		}
		if !have[i] {
			return nil, fmt.Errorf("%w: %d contacts, %d of them among the %d closest to the target", ErrNoPath, len(contacts), len(closest), k)
		}
	}
	return path, nil
}
