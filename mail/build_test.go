package mail

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/identity"
)

func TestBuildRefusesWhatRecipientsWouldReject(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, 4)
	good := composeTo(t, alice, []*identity.Identity{bob}, "s", "t")
	many := make([]*identity.PublicKey, MaxRecipients+1)
	for i := range many {
		many[i] = testIdentity(t, byte(100+i), 0).Public()
	}
	for _, tc := range []struct {
		name string
		in   BuildInput
		want error
	}{
		{"From is not the sender", BuildInput{Sender: bob, Recipients: publicKeys(alice), Message: good}, ErrFromMismatch},
		{"no From header", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: []byte("Subject: x\r\n\r\nbody")}, ErrFromHeader},
		{"no recipients", BuildInput{Sender: alice, Message: good}, ErrRecipientCount},
		{"too many recipients", BuildInput{Sender: alice, Recipients: many, Message: good}, ErrRecipientCount},
		{"duplicate recipient", BuildInput{Sender: alice, Recipients: publicKeys(bob, bob), Message: good}, ErrDuplicateRecipient},
		{"message too large", BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: append(bytes.Clone(good), make([]byte, MaxMessageSize)...)}, ErrMessageSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = testNow
			if _, err := c.Build(context.Background(), tc.in, BuildOptions{}); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
func TestBuildStopsGrindingWhenCancelled(t *testing.T) {
	c := testCodec(t)
	alice, bob := testIdentity(t, seedAlice, 4), testIdentity(t, seedBob, block.MaxDifficulty)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := c.Build(ctx, BuildInput{Sender: alice, Recipients: publicKeys(bob), Message: composeTo(t, alice, []*identity.Identity{bob}, "s", "t"), Now: testNow},
		BuildOptions{ProgressInterval: time.Millisecond, Progress: func(p Progress) {
			if p.Phase == PhaseGrind {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
