package bridge

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/flowmail/flowmail/testnet"
)

func appendMsg(t *testing.T, c *imapclient.Client, folder, subject string, flags ...imap.Flag) imap.UID {
	t.Helper()
	msg := fmt.Sprintf("From: a@b\r\nSubject: %s\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nbody of %s\r\n", subject, subject)
	cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: flags})
	cmd.Write([]byte(msg))
	cmd.Close()
	d, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND %s: %v", subject, err)
	}
	return d.UID
}

// TestIMAPFoldersSearchCopyMoveExpunge exercises the IMAP commands a
// desktop client uses, through go-imap's client, with no network behind
// the bridge.
func TestIMAPFoldersSearchCopyMoveExpunge(t *testing.T) {
	u, err := testnet.NewUser(filepath.Join(t.TempDir(), "alice"), 4)
	if err != nil {
		t.Fatal(err)
	}
	b, pw := startBridge(t, bridgeConfig(u, offline{stallNet{t.TempDir()}}, newEvents()))
	c := imapLogin(t, b, pw, nil)

	// LIST shows the special folders with their attributes.
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	for name, want := range map[string]imap.MailboxAttr{"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts, "Trash": imap.MailboxAttrTrash, "Archive": imap.MailboxAttrArchive} {
		if !slices.Contains(attrs[name], want) {
			t.Errorf("LIST %s: %v, want %s", name, attrs[name], want)
		}
	}
	if _, ok := attrs["INBOX"]; !ok {
		t.Fatalf("LIST: %v", attrs)
	}

	// CREATE, RENAME with children, DELETE.
	for _, n := range []string{"Work", "Work.Projects"} {
		if err := c.Create(n, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create("Work", nil).Wait(); err == nil {
		t.Fatal("CREATE of an existing folder succeeded")
	}
	appendMsg(t, c, "Work.Projects", "plan")
	if err := c.Rename("Work", "Jobs", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("Jobs.Projects", &imap.StatusOptions{NumMessages: true, UIDValidity: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS after RENAME: %+v %v", st, err)
	}
	if err := c.Delete("Jobs").Wait(); err == nil {
		t.Fatal("DELETE of a folder with a folder below it succeeded")
	}
	if err := c.Delete("Jobs.Projects").Wait(); err != nil {
		t.Fatal(err)
	}

	// SEARCH by flag and subject.
	for i, s := range []string{"alpha", "beta", "gamma", "delta"} {
		var flags []imap.Flag
		if i%2 == 1 {
			flags = []imap.Flag{imap.FlagSeen}
		}
		appendMsg(t, c, "INBOX", s, flags...)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sd, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
	if err != nil || fmt.Sprint(sd.AllUIDs()) != "[1 3]" {
		t.Fatalf("UID SEARCH UNSEEN: %v %v", sd.AllUIDs(), err)
	}
	sd, err = c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "GAMMA"}}}, nil).Wait()
	if err != nil || fmt.Sprint(sd.AllSeqNums()) != "[3]" {
		t.Fatalf("SEARCH SUBJECT: %v %v", sd.AllSeqNums(), err)
	}
	sd, err = c.Search(&imap.SearchCriteria{Body: []string{"body of delta"}, Not: []imap.SearchCriteria{{Flag: []imap.Flag{imap.FlagDeleted}}}}, nil).Wait()
	if err != nil || fmt.Sprint(sd.AllSeqNums()) != "[4]" {
		t.Fatalf("SEARCH BODY: %v %v", sd.AllSeqNums(), err)
	}

	// COPY answers COPYUID; MOVE expunges from the source.
	cd, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil || cd.UIDValidity == 0 || cd.DestUIDs.String() != "1:2" {
		t.Fatalf("COPY: %+v %v", cd, err)
	}
	md, err := c.Move(imap.SeqSetNum(1), "Trash").Wait()
	if err != nil || md.DestUIDs.String() != "1" || md.SourceUIDs.String() != "1" {
		t.Fatalf("MOVE: %+v %v", md, err)
	}
	// STORE \Deleted and EXPUNGE.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	gone, err := c.Expunge().Collect()
	if err != nil || fmt.Sprint(gone) != "[1]" {
		t.Fatalf("EXPUNGE: %v %v", gone, err)
	}
	left := readInbox(t, c, "INBOX")
	if fmt.Sprint(left.uids) != "[3 4]" || !slices.Equal(left.subjects, []string{"gamma", "delta"}) {
		t.Fatalf("INBOX after MOVE and EXPUNGE: %+v", left)
	}
	for folder, want := range map[string]string{"Archive": "[alpha beta]", "Trash": "[alpha]"} {
		if got := readInbox(t, c, folder); fmt.Sprint(got.subjects) != want {
			t.Errorf("%s: %v, want %s", folder, got.subjects, want)
		}
	}
	// A second client sees what the first did, told at its next command.
	c2 := imapLogin(t, b, pw, nil)
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(4), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c2.Fetch(imap.UIDSetNum(4), &imap.FetchOptions{Flags: true, InternalDate: true, RFC822Size: true}).Collect()
	if err != nil || len(msgs) != 1 || !hasFlags(msgs[0].Flags, imap.FlagFlagged) || msgs[0].RFC822Size == 0 || time.Since(msgs[0].InternalDate) > time.Hour {
		t.Fatalf("second client: %+v %v", msgs, err)
	}
	if !strings.Contains(fmt.Sprint(c2.Caps()), "UIDPLUS") {
		t.Fatalf("capabilities: %v", c2.Caps())
	}
}
