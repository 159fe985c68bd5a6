package bridge

import (
	"github.com/flowmail/flowmail/mailbox"
)

// view is one client's view of its selected folder: the messages it has
// been told of, by sequence number, with the flags it was told. The
// folder changes under it (other clients, fetch, mutt); refresh says what
// to tell the client so that its sequence numbers stay right. It knows
// nothing of IMAP's wire format, so the IMAP library can be replaced.
type view struct {
	folder   *mailbox.Folder
	readOnly bool
	msgs     []viewMsg
}

type viewMsg struct {
	uid   uint32
	flags mailbox.Flags
	gone  bool // removed from the folder, the client not yet told
}

type updateKind uint8

const (
	updExpunge updateKind = iota + 1 // seq is gone; later ones move down
	updExists                        // the view now holds count messages
	updFlags                         // seq (uid) has new flags
)

type update struct {
	kind  updateKind
	seq   uint32
	uid   uint32
	flags mailbox.Flags
	count uint32
}

func newView(f *mailbox.Folder, readOnly bool) *view {
	v := &view{folder: f, readOnly: readOnly}
	for _, m := range f.Messages() {
		v.msgs = append(v.msgs, viewMsg{uid: m.UID, flags: m.Flags})
	}
	return v
}

// refresh compares the view with the folder and returns what the client
// must be told, in order: expunges (highest sequence first, and only when
// allowExpunge: during FETCH, STORE and SEARCH sequence numbers must not
// move), flag changes, then the new message count.
func (v *view) refresh(allowExpunge bool) []update {
	cur := v.folder.Messages()
	now := make(map[uint32]mailbox.Flags, len(cur))
	for _, m := range cur {
		now[m.UID] = m.Flags
	}
	var ups []update
	for i := len(v.msgs) - 1; i >= 0; i-- {
		if _, ok := now[v.msgs[i].uid]; ok {
			continue
		}
		if allowExpunge {
			ups = append(ups, update{kind: updExpunge, seq: uint32(i + 1)})
			v.msgs = append(v.msgs[:i], v.msgs[i+1:]...)
		} else {
			v.msgs[i].gone = true
		}
	}
	var last uint32
	for i := range v.msgs {
		m := &v.msgs[i]
		last = max(last, m.uid)
		if f, ok := now[m.uid]; ok && f != m.flags {
			m.flags = f
			ups = append(ups, update{kind: updFlags, seq: uint32(i + 1), uid: m.uid, flags: f})
		}
	}
	added := false
	for _, m := range cur { // UIDs only grow: a new message is above every known one
		if m.UID > last {
			v.msgs = append(v.msgs, viewMsg{uid: m.UID, flags: m.Flags})
			added = true
		}
	}
	if added {
		ups = append(ups, update{kind: updExists, count: uint32(len(v.msgs))})
	}
	return ups
}

// numRange is a range of sequence numbers or UIDs; 0 stands for "*", the
// highest one.
type numRange struct{ lo, hi uint32 }

// pick returns the indexes (sequence number - 1) of the messages in the
// ranges, in sequence order, skipping messages already gone.
func (v *view) pick(byUID bool, rs []numRange) []int {
	if len(v.msgs) == 0 {
		return nil
	}
	star := uint32(len(v.msgs))
	if byUID {
		star = v.msgs[len(v.msgs)-1].uid
	}
	var out []int
	for i, m := range v.msgs {
		n := uint32(i + 1)
		if byUID {
			n = m.uid
		}
		for _, r := range rs {
			lo, hi := r.lo, r.hi
			if lo == 0 {
				lo = star
			}
			if hi == 0 {
				hi = star
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if n >= lo && n <= hi && !m.gone {
				out = append(out, i)
				break
			}
		}
	}
	return out
}
