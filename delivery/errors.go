package delivery

import (
	"errors"
	"fmt"

	"github.com/flowmail/flowmail/block"
)

// ErrDuplicate rejects a signed mail delivered already, from another index
// block (spec 9.6).
var ErrDuplicate = errors.New("delivery: delivered already")

// ErrSenderUnverified refuses mail signed with a later generation's
// pubkey block of its sender (one that rotated) when the sender's key log
// cannot show that the key is the sender address's (spec 9.2, 15.5).
var ErrSenderUnverified = errors.New("delivery: the sender's key is not shown to be its address's")

// errSenderLogUnread marks an ErrSenderUnverified whose key log could not
// be read now: the mail is kept for a later fetch, not rejected.
var errSenderLogUnread = errors.New("key log not read")

// MailError is the outcome of one mail that could not be delivered. Fetch
// reports it and goes on with the other mails.
type MailError struct {
	Index block.ID // the index block's ID
	Err   error
}

func (e *MailError) Error() string { return fmt.Sprintf("mail %s: %v", e.Index.Short(), e.Err) }
func (e *MailError) Unwrap() error { return e.Err }

// messageKey names one signed mail in the processed set: its sender and
// envelope message ID.
func messageKey(sender block.ID, messageID [16]byte) string {
	return fmt.Sprintf("%x%x", sender[:], messageID[:])
}
