package mail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// envelopeVersion is the first byte of every envelope this code speaks:
// 3 carries the sender's address beside its current pubkey block, so a
// sender that rotated still signs as its address (spec 9.2, 15.5).
const envelopeVersion = 3

// Fixed parts of the envelope (spec 9.2): version, time, message_id,
// from, sender and recipient_count before the recipients; message_len
// after them; the signature after the message.
const (
	envelopeFixedSize = 1 + 8 + messageIDSize + block.IDSize + block.PubkeySize + 2
	envelopeMinSize   = envelopeFixedSize + block.IDSize + 8 + 1 + block.SignatureSize
)

// Envelope is the signed wrapper of a mail (spec 9.2): everything but the
// message itself, which streams between the head and the signature.
type Envelope struct {
	Time      time.Time // when the sender signed, whole seconds
	MessageID [messageIDSize]byte
	// From is the sender's address: the ID of its inception pubkey block,
	// which rotations keep. Sender's ID is From until the sender rotates.
	From        block.ID
	Sender      []byte // the sender's current pubkey block, as carried
	Recipients  []block.ID
	MessageLen  int64
	MessageHash [32]byte // of the message (MessageHash); not on the wire
	Signature   [block.SignatureSize]byte
}

// AppendHead appends the envelope's bytes before the message.
func (e *Envelope) AppendHead(dst []byte) []byte {
	dst = append(dst, envelopeVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Time.Unix()))
	dst = append(dst, e.MessageID[:]...)
	dst = append(dst, e.From[:]...)
	dst = append(dst, e.Sender...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Recipients)))
	for _, r := range e.Recipients {
		dst = append(dst, r[:]...)
	}
	return binary.BigEndian.AppendUint64(dst, uint64(e.MessageLen))
}

// SignedBytes returns what the signature covers: the head, then the
// message hash.
func (e *Envelope) SignedBytes() []byte {
	return append(e.AppendHead(nil), e.MessageHash[:]...)
}

// Encode returns the whole envelope around msg, with the signature as it
// stands. It sets MessageLen and MessageHash from msg.
func (e *Envelope) Encode(msg []byte) []byte {
	e.MessageLen, e.MessageHash = int64(len(msg)), MessageHash(msg)
	b := e.AppendHead(nil)
	b = append(b, msg...)
	return append(b, e.Signature[:]...)
}

// sign signs as sender; Sender, MessageLen and MessageHash must be set.
func (e *Envelope) sign(sender *identity.Identity) {
	e.Signature = sender.Sign(block.LabelEnvelope, e.SignedBytes())
}

func checkRecipients(rs []block.ID) error {
	if len(rs) < 1 || len(rs) > MaxRecipients {
		return fmt.Errorf("%w: %d recipients, allowed 1 to %d", ErrRecipientCount, len(rs), MaxRecipients)
	}
	seen := make(map[block.ID]struct{}, len(rs))
	for _, r := range rs {
		if _, dup := seen[r]; dup {
			return fmt.Errorf("%w: %s appears twice", ErrDuplicateRecipient, identity.FormatAddress(r))
		}
		seen[r] = struct{}{}
	}
	return nil
}

func checkMessageLen(n int64) error {
	if n < 1 || n > MaxMessageSize {
		return fmt.Errorf("%w: message of %d bytes, allowed 1 to %d", ErrMessageSize, n, MaxMessageSize)
	}
	return nil
}

// readHead reads and checks the envelope's head from r: version, counts,
// duplicates, message_len. It reads exactly the head.
func readHead(r io.Reader) (*Envelope, error) {
	var fixed [envelopeFixedSize]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return nil, readErr(err, "its fixed fields")
	}
	if fixed[0] != envelopeVersion {
		return nil, fmt.Errorf("%w: envelope version %d, this code speaks %d", ErrVersion, fixed[0], envelopeVersion)
	}
	e := &Envelope{Time: time.Unix(int64(binary.BigEndian.Uint64(fixed[1:])), 0)}
	copy(e.MessageID[:], fixed[9:])
	off := 9 + messageIDSize
	copy(e.From[:], fixed[off:])
	if e.From.IsZero() {
		return nil, fmt.Errorf("%w: no sender address", ErrFromAddress)
	}
	off += block.IDSize
	e.Sender = bytes.Clone(fixed[off : off+block.PubkeySize])
	n := int(binary.BigEndian.Uint16(fixed[off+block.PubkeySize:]))
	if n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients, allowed 1 to %d", ErrRecipientCount, n, MaxRecipients)
	}
	rest := make([]byte, n*block.IDSize+8)
	if _, err := io.ReadFull(r, rest); err != nil {
		return nil, readErr(err, fmt.Sprintf("its %d recipients", n))
	}
	e.Recipients = make([]block.ID, n)
	for i := range e.Recipients {
		copy(e.Recipients[i][:], rest[i*block.IDSize:])
	}
	if err := checkRecipients(e.Recipients); err != nil {
		return nil, err
	}
	mlen := binary.BigEndian.Uint64(rest[n*block.IDSize:])
	if mlen > MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes, allowed 1 to %d", ErrMessageSize, mlen, MaxMessageSize)
	}
	e.MessageLen = int64(mlen)
	if err := checkMessageLen(e.MessageLen); err != nil {
		return nil, err
	}
	return e, nil
}

// readErr describes a failed read of the envelope inside what: the
// envelope ended there, or the stream under it (a decompressor) failed.
func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: envelope ends inside %s", ErrTruncated, what)
	}
	return fmt.Errorf("%w: inside the envelope's %s: %v", ErrDecompress, strings.TrimPrefix(what, "its "), err)
}

// DecodeEnvelope decodes a whole envelope held in memory: its layout,
// counts, duplicates and trailing bytes. It computes MessageHash but does
// not verify the sender or the signature (VerifyFor does). The message
// returned aliases b.
func DecodeEnvelope(b []byte) (*Envelope, []byte, error) {
	if len(b) < envelopeMinSize {
		return nil, nil, fmt.Errorf("%w: envelope of %d bytes, at least %d needed", ErrTruncated, len(b), envelopeMinSize)
	}
	r := bytes.NewReader(b)
	e, err := readHead(r)
	if err != nil {
		return nil, nil, err
	}
	off := len(b) - r.Len()
	rest := int64(r.Len())
	switch {
	case rest < e.MessageLen+block.SignatureSize:
		return nil, nil, fmt.Errorf("%w: envelope holds %d bytes after message_len, needs %d", ErrTruncated, rest, e.MessageLen+block.SignatureSize)
	case rest > e.MessageLen+block.SignatureSize:
		return nil, nil, fmt.Errorf("%w: %d bytes after the signature", ErrTrailing, rest-e.MessageLen-block.SignatureSize)
	}
	msg := b[off : off+int(e.MessageLen)]
	copy(e.Signature[:], b[off+int(e.MessageLen):])
	e.MessageHash = MessageHash(msg)
	return e, msg, nil
}

// senderKey parses the sender's pubkey block, owned by the envelope's
// from address (identity.PublicKey.At): its ID is From's until the sender
// rotates, and after that only the sender's key log binds it to From
// (spec 15.5, Opened.Rotated).
func (e *Envelope) senderKey() (*identity.PublicKey, error) {
	sender, err := identity.ParsePubkey(e.Sender)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSender, err)
	}
	return sender.At(e.From), nil
}

// verifyHead makes the checks of spec 9.2 that need no more than the
// head: the sender's pubkey block verifies and me is among the
// recipients. It returns the sender's key.
func (e *Envelope) verifyHead(me block.ID) (*identity.PublicKey, error) {
	sender, err := e.senderKey()
	if err != nil {
		return nil, err
	}
	for _, r := range e.Recipients {
		if r == me {
			return sender, nil
		}
	}
	names := make([]string, len(e.Recipients))
	for i, r := range e.Recipients {
		names[i] = identity.FormatAddress(r)
	}
	return nil, fmt.Errorf("%w: %s signed this mail for %s, not for %s (it was forwarded by someone else)",
		ErrNotRecipient, sender.Address(), strings.Join(names, ", "), identity.FormatAddress(me))
}

// verifySignature checks the signature over the head and MessageHash.
func (e *Envelope) verifySignature(sender *identity.PublicKey) error {
	if !sender.Verify(block.LabelEnvelope, e.SignedBytes(), e.Signature[:]) {
		return fmt.Errorf("%w: signature is not by the envelope's sender %s", ErrSignature, sender.Address())
	}
	return nil
}

// VerifyFor makes the checks of spec 9.2 for recipient me, given the
// message (its first MaxHeaderSize bytes are enough): the sender's pubkey
// block verifies, the signature covers the head and MessageHash, me is
// among the recipients, and the header section ends within MaxHeaderSize
// bytes with a From header that names the envelope's from address. It
// returns the sender's verified key, owned by that address; when its ID
// is not the address (the sender rotated), the caller MUST check the key
// against the sender's key log (spec 15.5).
func (e *Envelope) VerifyFor(me block.ID, msg []byte) (*identity.PublicKey, error) {
	sender, err := e.senderKey()
	if err != nil {
		return nil, err
	}
	if err := e.verifySignature(sender); err != nil {
		return nil, err
	}
	if _, err := e.verifyHead(me); err != nil {
		return nil, err
	}
	if err := checkHeader(msg[:min(len(msg), MaxHeaderSize)], e.MessageLen, e.From); err != nil {
		return nil, err
	}
	return sender, nil
}

// OpenEnvelope decodes and verifies a whole envelope for recipient me. The
// message returned aliases b.
func OpenEnvelope(b []byte, me block.ID) (*Envelope, []byte, *identity.PublicKey, error) {
	e, msg, err := DecodeEnvelope(b)
	if err != nil {
		return nil, nil, nil, err
	}
	sender, err := e.VerifyFor(me, msg)
	if err != nil {
		return nil, nil, nil, err
	}
	return e, msg, sender, nil
}
