package node

import (
	"bytes"
	"testing"
	"time"

	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/kademlia"
	"github.com/flowmail/flowmail/onion"
	"github.com/flowmail/flowmail/record"
)

// TestRecordVersionsPutTheDecidingOnesFirst: an exit answers each
// distinct version once, and the version no other supersedes (here a
// revocation, held by one node) before the stale one most nodes hold,
// so a client that gets only the first MaxRecordReply still folds to
// the same state; a reply of those versions round-trips.
func TestRecordVersionsPutTheDecidingOnesFirst(t *testing.T) {
	id, err := identity.Generate(0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log0, err := record.NewKeyLog(id.Public().Block)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := record.Revoke(log0, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	answers := []kademlia.RecordAnswer{{Record: log0}, {Record: log0}, {Record: revoked}, {Record: log0}}
	got := recordVersions(answers)
	if len(got) != 2 || !bytes.Equal(got[0], revoked.Bytes()) || !bytes.Equal(got[1], log0.Bytes()) {
		t.Fatalf("versions %d, first is the revocation: %v; want the revocation, then the stale log", len(got), len(got) > 0 && bytes.Equal(got[0], revoked.Bytes()))
	}
	st, err := record.ResolveKeyLog(id.ID(), got[:1])
	if err != nil || !st.Revoked {
		t.Fatalf("the first version alone folds to %+v, %v; want revoked", st, err)
	}
	body, err := onion.EncodeReply(onion.RecordReply{Records: got, More: true})
	if err != nil {
		t.Fatal(err)
	}
	r, err := onion.ParseReply(body)
	if rr, ok := r.(onion.RecordReply); err != nil || !ok || len(rr.Records) != 2 || !rr.More || !bytes.Equal(rr.Records[0], revoked.Bytes()) {
		t.Fatalf("the reply came back as %#v, %v", r, err)
	}
}
