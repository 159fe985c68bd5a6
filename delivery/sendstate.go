package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/internal/atomicfile"
	"github.com/flowmail/flowmail/mail"
)

// sendStateVersion is the version of the send state file this code
// writes and reads.
const sendStateVersion = 1

// maxSendState bounds what is read of a send state file: the shard IDs
// and index blocks of the largest mail to MaxRecipients, in hex, fit
// with room to spare.
const maxSendState = 64 << 20

// sendState is what one Send has done, kept in a file (docs/PROTOCOL.md
// 10.2) so that an interrupted Send resumes: the seed of the mail's
// randomness and its signing time (so the mail is built again byte for
// byte), the data blocks stored, and once ground, the index blocks and
// which of them are stored. The file is rewritten atomically after each
// group, when a Send stops on an error, and after each index block.
type sendState struct {
	path string
	j    sendStateJSON
	mu   sync.Mutex // guards done: blocks are stored concurrently
	done map[block.ID]bool
	idx  [][]byte // index block bytes, by recipient
}

type sendStateJSON struct {
	Version       int              `json:"version"`
	Sender        string           `json:"sender"`
	Recipients    []string         `json:"recipients"`
	Size          int64            `json:"size"`
	Seed          string           `json:"seed"`     // hex, 32 bytes
	Signed        int64            `json:"signed"`   // Unix seconds
	Lifetime      int64            `json:"lifetime"` // seconds
	Stored        []string         `json:"stored"`   // hex IDs of data blocks stored, sorted
	MessageID     string           `json:"message_id,omitempty"`
	CompressedLen int64            `json:"compressed_len,omitempty"`
	Index         []indexStateJSON `json:"index,omitempty"` // once ground, one per recipient
}

type indexStateJSON struct {
	Block  string `json:"block"` // hex
	Stored bool   `json:"stored"`
}

// openSendState reads the state at path for in, or starts one (written
// to path when path is set).
func openSendState(path string, in mail.BuildInput) (*sendState, error) {
	s := &sendState{path: path, done: map[block.ID]bool{}}
	s.j = sendStateJSON{Version: sendStateVersion, Size: in.Size, Signed: in.Now.Unix(), Lifetime: int64(in.Lifetime / time.Second)}
	if in.Sender != nil {
		s.j.Sender = in.Sender.Address()
	}
	for _, r := range in.Recipients {
		if r != nil {
			s.j.Recipients = append(s.j.Recipients, r.Address())
		}
	}
	if path != "" {
		b, err := atomicfile.ReadBounded(path, maxSendState)
		switch {
		case err == nil:
			return s.resume(b)
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w: %s: %v", ErrSendState, path, err)
		}
	}
	rnd := in.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	var seed [32]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return nil, fmt.Errorf("delivery: reading randomness: %w", err)
	}
	s.j.Seed = hex.EncodeToString(seed[:])
	return s, s.save()
}

// resume takes the state of an interrupted Send of the same mail.
func (s *sendState) resume(b []byte) (*sendState, error) {
	want := s.j
	bad := func(format string, a ...any) (*sendState, error) {
		return nil, fmt.Errorf("%w: %s %s (to start the send over, remove that file)", ErrSendState, s.path, fmt.Sprintf(format, a...))
	}
	var j sendStateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return bad("is damaged: %v", err)
	}
	if j.Version != sendStateVersion {
		return bad("has version %d, this code reads %d", j.Version, sendStateVersion)
	}
	if j.Sender != want.Sender || !slices.Equal(j.Recipients, want.Recipients) || j.Size != want.Size {
		return bad("belongs to another mail (from %s to %d recipients, %d bytes)", j.Sender, len(j.Recipients), j.Size)
	}
	seed, err := hex.DecodeString(j.Seed)
	if err != nil || len(seed) != 32 {
		return bad("is damaged: bad seed")
	}
	if j.Lifetime < 1 || j.Lifetime > int64(block.MaxLifetime/time.Second) || j.Signed <= 0 {
		return bad("is damaged: lifetime %d s, signed at %d", j.Lifetime, j.Signed)
	}
	for _, h := range j.Stored {
		id, err := block.ParseHexID(h)
		if err != nil {
			return bad("is damaged: %v", err)
		}
		s.done[id] = true
	}
	if len(j.Index) > 0 {
		if len(j.Index) != len(j.Recipients) {
			return bad("is damaged: %d index blocks for %d recipients", len(j.Index), len(j.Recipients))
		}
		if _, err := mail.LayoutFor(j.CompressedLen); err != nil {
			return bad("is damaged: %v", err)
		}
		if _, err := hex.DecodeString(j.MessageID); err != nil || len(j.MessageID) != 32 {
			return bad("is damaged: bad message ID")
		}
		for _, x := range j.Index {
			b, err := hex.DecodeString(x.Block)
			if err == nil {
				_, err = block.ParseIndex(b)
			}
			if err != nil {
				return bad("is damaged: index block: %v", err)
			}
			s.idx = append(s.idx, b)
		}
	}
	s.j = j
	return s, nil
}

// save rewrites the file, if there is one.
func (s *sendState) save() error {
	if s.path == "" {
		return nil
	}
	s.mu.Lock()
	s.j.Stored = s.j.Stored[:0]
	for id := range s.done {
		s.j.Stored = append(s.j.Stored, id.String())
	}
	s.mu.Unlock()
	sort.Strings(s.j.Stored)
	b, err := json.Marshal(s.j)
	if err != nil {
		return fmt.Errorf("delivery: send state: %w", err)
	}
	if err := atomicfile.Write(s.path, b, 0o600); err != nil {
		return fmt.Errorf("delivery: saving the send state: %w", err)
	}
	return nil
}

func (s *sendState) signed() time.Time { return time.Unix(s.j.Signed, 0) }

func (s *sendState) lifetime() time.Duration { return time.Duration(s.j.Lifetime) * time.Second }

// rand is the mail's randomness: the ChaCha20 key stream of the seed, so
// the same seed builds the same mail.
func (s *sendState) rand() io.Reader {
	seed, _ := hex.DecodeString(s.j.Seed)
	c, _ := chacha20.NewUnauthenticatedCipher(seed, make([]byte, chacha20.NonceSize))
	return keyStream{c}
}

type keyStream struct{ c *chacha20.Cipher }

func (k keyStream) Read(p []byte) (int, error) {
	clear(p)
	k.c.XORKeyStream(p, p)
	return len(p), nil
}

func (s *sendState) isStored(id block.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done[id]
}

func (s *sendState) markStored(id block.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done[id] = true
}

// ground reports whether the index blocks are built.
func (s *sendState) ground() bool { return len(s.idx) > 0 }

// setIndex records the built mail's index blocks, before they are stored.
func (s *sendState) setIndex(b *mail.Built) {
	s.j.MessageID = hex.EncodeToString(b.MessageID[:])
	s.j.CompressedLen = b.Layout.CompressedLen
	s.j.Index, s.idx = nil, nil
	for _, x := range b.Index {
		s.j.Index = append(s.j.Index, indexStateJSON{Block: hex.EncodeToString(x.Bytes)})
		s.idx = append(s.idx, x.Bytes)
	}
}

// Sent describes a mail Send stored.
type Sent struct {
	MessageID [16]byte
	Layout    mail.Layout
	Index     []block.ID // by recipient
	Reused    int        // data blocks an earlier, interrupted Send had stored
}

func (s *sendState) sent(reused int) *Sent {
	out := &Sent{Reused: reused}
	id, _ := hex.DecodeString(s.j.MessageID)
	copy(out.MessageID[:], id)
	out.Layout, _ = mail.LayoutFor(s.j.CompressedLen)
	for _, b := range s.idx {
		out.Index = append(out.Index, block.Sum(b))
	}
	return out
}

// recipientName is recipient i as the file names it.
func (s *sendState) recipientName(i int) string {
	if i < len(s.j.Recipients) {
		return s.j.Recipients[i]
	}
	return identity.FormatAddress(block.ID{})
}
