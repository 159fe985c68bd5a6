package mail

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

// envelopeVersion is the first byte of every version 1 envelope.
const envelopeVersion = 1

// Fixed parts of the envelope (spec 9.2): version, time, message_id,
// sender and recipient_count before the recipients; message_len after them;
// the signature last.
const (
	envelopeHeadSize = 1 + 8 + messageIDSize + block.PubkeySize + 2
	envelopeMinSize  = envelopeHeadSize + block.IDSize + 4 + 1 + block.SignatureSize
)

// Envelope is the signed wrapper of a mail (spec 9.2). Decoded envelopes
// alias the bytes they came from.
type Envelope struct {
	Time       time.Time // when the sender signed, whole seconds
	MessageID  [messageIDSize]byte
	Sender     []byte // the sender's pubkey block, as carried
	Recipients []block.ID
	Message    []byte // the RFC 5322 bytes
	Signature  [block.SignatureSize]byte

	raw []byte // the decoded bytes, so the signature is checked over them exactly
}

// appendSigned appends every field the signature covers.
func (e *Envelope) appendSigned(dst []byte) []byte {
	dst = append(dst, envelopeVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.Time.Unix()))
	dst = append(dst, e.MessageID[:]...)
	dst = append(dst, e.Sender...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(e.Recipients)))
	for _, r := range e.Recipients {
		dst = append(dst, r[:]...)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(e.Message)))
	return append(dst, e.Message...)
}

func (e *Envelope) size() int {
	return envelopeHeadSize + len(e.Recipients)*block.IDSize + 4 + len(e.Message) + block.SignatureSize
}

// Encode returns the envelope bytes with its signature as it stands.
func (e *Envelope) Encode() []byte {
	return append(e.appendSigned(make([]byte, 0, e.size())), e.Signature[:]...)
}

// signEnvelope fills in the sender and signs. It checks what a sender
// controls, so a mail that every recipient would reject is never built.
func signEnvelope(e *Envelope, sender *identity.Identity) ([]byte, error) {
	e.Sender = sender.Public().Block
	if err := checkRecipients(e.Recipients); err != nil {
		return nil, err
	}
	if len(e.Message) == 0 || len(e.Message) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes, allowed 1 to %d", ErrMessageSize, len(e.Message), MaxMessageSize)
	}
	b := e.appendSigned(make([]byte, 0, e.size()))
	e.Signature = sender.Sign(block.LabelEnvelope, b)
	return append(b, e.Signature[:]...), nil
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

// DecodeEnvelope decodes the layout of an envelope: lengths, counts,
// duplicates and trailing bytes. It does not verify the sender or the
// signature (VerifyFor does). The result aliases b.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if len(b) < envelopeMinSize {
		return nil, fmt.Errorf("%w: envelope of %d bytes, at least %d needed", ErrTruncated, len(b), envelopeMinSize)
	}
	if b[0] != envelopeVersion {
		return nil, fmt.Errorf("%w: envelope version %d, this code speaks %d", ErrVersion, b[0], envelopeVersion)
	}
	e := &Envelope{}
	e.Time = time.Unix(int64(binary.BigEndian.Uint64(b[1:])), 0)
	copy(e.MessageID[:], b[9:])
	off := 9 + messageIDSize
	e.Sender = b[off : off+block.PubkeySize]
	off += block.PubkeySize
	n := int(binary.BigEndian.Uint16(b[off:]))
	off += 2
	if n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients, allowed 1 to %d", ErrRecipientCount, n, MaxRecipients)
	}
	if len(b)-off < n*block.IDSize+4 {
		return nil, fmt.Errorf("%w: envelope ends inside its %d recipients", ErrTruncated, n)
	}
	e.Recipients = make([]block.ID, n)
	for i := range e.Recipients {
		off += copy(e.Recipients[i][:], b[off:])
	}
	if err := checkRecipients(e.Recipients); err != nil {
		return nil, err
	}
	mlen := int64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if mlen < 1 || mlen > MaxMessageSize {
		return nil, fmt.Errorf("%w: message of %d bytes, allowed 1 to %d", ErrMessageSize, mlen, MaxMessageSize)
	}
	rest := int64(len(b) - off)
	switch {
	case rest < mlen+block.SignatureSize:
		return nil, fmt.Errorf("%w: envelope holds %d bytes after message_len, needs %d", ErrTruncated, rest, mlen+block.SignatureSize)
	case rest > mlen+block.SignatureSize:
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrTrailing, rest-mlen-block.SignatureSize)
	}
	e.Message = b[off : off+int(mlen)]
	copy(e.Signature[:], b[off+int(mlen):])
	e.raw = b
	return e, nil
}

// VerifyFor makes the checks of spec 9.2 for recipient me: the sender's
// pubkey block verifies, the signature covers the envelope, me is among
// the recipients, and the From header names the signer. It returns the
// sender's verified key.
func (e *Envelope) VerifyFor(me block.ID) (*identity.PublicKey, error) {
	sender, err := identity.ParsePubkey(e.Sender)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSender, err)
	}
	signed := e.raw
	if signed == nil {
		signed = e.Encode()
	}
	signed = signed[:len(signed)-block.SignatureSize]
	if !sender.Verify(block.LabelEnvelope, signed, e.Signature[:]) {
		return nil, fmt.Errorf("%w: signature is not by the envelope's sender %s", ErrSignature, sender.Address())
	}
	if !containsID(e.Recipients, me) {
		names := make([]string, len(e.Recipients))
		for i, r := range e.Recipients {
			names[i] = identity.FormatAddress(r)
		}
		return nil, fmt.Errorf("%w: %s signed this mail for %s, not for %s (it was forwarded by someone else)",
			ErrNotRecipient, sender.Address(), strings.Join(names, ", "), identity.FormatAddress(me))
	}
	if err := CheckFrom(e.Message, sender.ID); err != nil {
		return nil, err
	}
	return sender, nil
}

// OpenEnvelope decodes and verifies an envelope for recipient me.
func OpenEnvelope(b []byte, me block.ID) (*Envelope, *identity.PublicKey, error) {
	e, err := DecodeEnvelope(b)
	if err != nil {
		return nil, nil, err
	}
	sender, err := e.VerifyFor(me)
	if err != nil {
		return nil, nil, err
	}
	return e, sender, nil
}

func containsID(ids []block.ID, id block.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
