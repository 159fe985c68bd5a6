package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/transport"
)

// HoldsPerSource bounds the HOLD requests from one source (an IP group)
// per LimitWindow: each costs the server a key-log and a record lookup.
const HoldsPerSource = 60

// isHeld reports whether t is a held-mail message type (section 21.5).
func isHeld(t MsgType) bool { return t >= TypeHold && t <= TypeHeldConfirm }

// heldService answers the held-mail messages for a Holder.
type heldService struct {
	h     *Holder
	group func(transport.Peer) transport.Group

	mu    sync.Mutex
	holds *limiter
}

func newHeldService(h *Holder, group func(transport.Peer) transport.Group) *heldService {
	if group == nil {
		group = func(p transport.Peer) transport.Group { return transport.DefaultGroup(p.Addr) }
	}
	return &heldService{h: h, group: group, holds: newLimiter(HoldsPerSource, LimitWindow)}
}

// Handle answers one held-mail request.
func (s *heldService) Handle(ctx context.Context, from transport.Peer, req []byte) []byte {
	m, refusal := decodeRequest(req)
	if refusal != nil {
		return refusal
	}
	switch m := m.(type) {
	case Hold:
		src, now := s.group(from).String(), s.h.cfg.Clock.Now()
		s.mu.Lock()
		ok := s.holds.wouldAllow(src, now)
		if ok {
			s.holds.allow(src, now)
		}
		wait := s.holds.retryAfter(src, now)
		s.mu.Unlock()
		if !ok {
			return errorReply(CodeRateLimited, fmt.Sprintf("too many HOLD requests from %s; retry in %s", src, wait.Round(time.Second)))
		}
		st, err := s.h.Hold(ctx, m.Owner)
		if err != nil {
			return errorReply(kademlia.CodeOverloaded, err.Error())
		}
		return Encode(st)
	case HeldList:
		ids, more, err := s.h.List(m.Owner, m.After)
		if err != nil {
			return errorReply(CodeNotHeld, err.Error())
		}
		return Encode(HeldIDs{More: more, IDs: ids})
	case HeldGet:
		b, err := s.h.Get(m.Owner, m.ID)
		if err != nil {
			return errorReply(CodeNotHeld, err.Error())
		}
		return Encode(HeldBlock{Block: b})
	case HeldConfirm:
		switch err := s.h.Confirm(ctx, m); {
		case errors.Is(err, ErrBadProof):
			return errorReply(kademlia.CodeForbidden, err.Error())
		case errors.Is(err, ErrNotHeld):
			return errorReply(CodeNotHeld, err.Error())
		case err != nil:
			s.h.cfg.Logger.Error("confirming held mail", "err", err)
			return errorReply(kademlia.CodeInternal, "dropping the mail failed")
		}
		b, _ := kademlia.Encode(kademlia.OK{})
		return b
	}
	return errorReply(kademlia.CodeMalformed, fmt.Sprintf("%#02x is not a request", uint8(m.Type())))
}
