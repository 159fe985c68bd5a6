package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/flowmail/flowmail/mailbox"
)

// The IMAP side is a thin adapter from go-imap v2's imapserver (a beta)
// to the bridge's own pieces: logins (checker, limiter), folders and
// messages (package mailbox) and per-client views (view). Replacing the
// library means rewriting this file and imapmessage.go only.

// specialUse names the folders every client expects, made at start.
var specialUse = map[string]imap.MailboxAttr{
	"Sent": imap.MailboxAttrSent, "Drafts": imap.MailboxAttrDrafts,
	"Trash": imap.MailboxAttrTrash, "Archive": imap.MailboxAttrArchive,
}

// defaultRescan is how often an idling client's folder is read again for
// changes made by other programs (mutt, a `flowmail fetch` beside the
// bridge). Mail the bridge fetches itself wakes idlers at once.
const defaultRescan = 30 * time.Second

func (b *Bridge) newIMAPServer() *imapserver.Server {
	return imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if !b.sessions.start() {
				return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "the bridge is stopping"}
			}
			return &imapSession{b: b, remote: remoteHost(c.NetConn().RemoteAddr())}, nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapNamespace: {},
			imap.CapSpecialUse: {}, imap.CapChildren: {}, imap.CapLiteralPlus: {},
		},
		Logger:       slogPrintf{b.log.With("server", "imap")},
		TLSConfig:    b.tls,
		InsecureAuth: !b.remote, // on loopback only; elsewhere STARTTLS first
	})
}

func remoteHost(a net.Addr) string {
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

type imapSession struct {
	b      *Bridge
	remote string
	authed bool
	view   *view
}

var _ imapserver.SessionMove = (*imapSession)(nil)
var _ imapserver.SessionNamespace = (*imapSession)(nil)
var _ imapserver.SessionAppendLimit = (*imapSession)(nil)

func (s *imapSession) Close() error {
	s.b.sessions.done()
	return nil
}

func (s *imapSession) Login(username, password string) error {
	if err := s.b.login(s.remote, username, password); err != nil {
		if errors.Is(err, ErrRateLimits) {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: err.Error()}
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: err.Error()}
	}
	s.authed = true
	return nil
}

// imapErr turns the store's errors into IMAP answers a client shows.
func imapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mailbox.ErrNoFolder):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: err.Error()}
	case errors.Is(err, mailbox.ErrFolderExists):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAlreadyExists, Text: err.Error()}
	case errors.Is(err, mailbox.ErrFolderName):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: err.Error()}
	case errors.Is(err, mailbox.ErrTooBig):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: err.Error()}
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: err.Error()}
}

func (s *imapSession) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailbox.Delimiter}}}, nil
}

func (s *imapSession) AppendLimit() uint32 { return uint32(min(s.b.maxSize, 1<<32-1)) }

func (s *imapSession) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	f, err := s.b.store.Folder(name)
	if err != nil {
		return nil, imapErr(err)
	}
	s.view = newView(f, options != nil && options.ReadOnly)
	d := &imap.SelectData{
		Flags:          knownFlags,
		PermanentFlags: knownFlags,
		NumMessages:    uint32(len(s.view.msgs)),
		UIDNext:        imap.UID(f.UIDNext()),
		UIDValidity:    f.UIDValidity(),
	}
	if s.view.readOnly {
		d.PermanentFlags = nil
	}
	for i, m := range s.view.msgs {
		if !m.flags.Has(mailbox.FlagSeen) {
			d.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	return d, nil
}

func (s *imapSession) Unselect() error {
	s.view = nil
	return nil
}

func (s *imapSession) Create(name string, _ *imap.CreateOptions) error {
	return imapErr(s.b.store.Create(name))
}

func (s *imapSession) Delete(name string) error {
	if s.view != nil && s.view.folder.Name() == name {
		s.view = nil
	}
	return imapErr(s.b.store.Delete(name))
}

func (s *imapSession) Rename(from, to string, _ *imap.RenameOptions) error {
	return imapErr(s.b.store.Rename(from, to))
}

// Every folder counts as subscribed: SUBSCRIBE and UNSUBSCRIBE succeed and
// change nothing.
func (s *imapSession) Subscribe(string) error   { return nil }
func (s *imapSession) Unsubscribe(string) error { return nil }

func (s *imapSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	names, err := s.b.store.Folders()
	if err != nil {
		return imapErr(err)
	}
	if len(patterns) == 0 { // LIST "" "": the delimiter
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: mailbox.Delimiter})
	}
	for _, name := range names {
		match := false
		for _, p := range patterns {
			match = match || imapserver.MatchList(name, mailbox.Delimiter, ref, p)
		}
		if !match {
			continue
		}
		attr, special := specialUse[name]
		if options != nil && options.SelectSpecialUse && !special {
			continue
		}
		d := &imap.ListData{Delim: mailbox.Delimiter, Mailbox: name, Attrs: []imap.MailboxAttr{imap.MailboxAttrSubscribed}}
		if special {
			d.Attrs = append(d.Attrs, attr)
		}
		children := imap.MailboxAttrHasNoChildren
		for _, n := range names {
			if strings.HasPrefix(n, name+string(mailbox.Delimiter)) {
				children = imap.MailboxAttrHasChildren
			}
		}
		d.Attrs = append(d.Attrs, children)
		if options != nil && options.ReturnStatus != nil {
			if d.Status, err = s.Status(name, options.ReturnStatus); err != nil {
				return err
			}
		}
		if err := w.WriteList(d); err != nil {
			return err
		}
	}
	return nil
}

func (s *imapSession) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	f, err := s.b.store.Folder(name)
	if err != nil {
		return nil, imapErr(err)
	}
	msgs := f.Messages()
	d := &imap.StatusData{Mailbox: f.Name(), UIDNext: imap.UID(f.UIDNext()), UIDValidity: f.UIDValidity()}
	var unseen, deleted uint32
	var size int64
	for _, m := range msgs {
		if !m.Flags.Has(mailbox.FlagSeen) {
			unseen++
		}
		if m.Flags.Has(mailbox.FlagDeleted) {
			deleted++
		}
		size += m.Size
	}
	n := uint32(len(msgs))
	if options.NumMessages {
		d.NumMessages = &n
	}
	if options.NumUnseen {
		d.NumUnseen = &unseen
	}
	if options.NumDeleted {
		d.NumDeleted = &deleted
	}
	if options.Size {
		d.Size = &size
	}
	return d, nil
}

func (s *imapSession) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	f, err := s.b.store.Folder(name)
	if err != nil {
		if errors.Is(err, mailbox.ErrNoFolder) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: err.Error()}
		}
		return nil, imapErr(err)
	}
	// A literal cut short by a client gone away ends in a plain EOF: the
	// message must not be stored short.
	m, err := f.Append(&exactReader{r: r, left: r.Size()}, toFlags(options.Flags), options.Time, s.b.maxSize)
	if err != nil {
		s.b.log.Info("append failed; nothing was stored", "folder", name, "err", err)
		return nil, imapErr(err)
	}
	return &imap.AppendData{UID: imap.UID(m.UID), UIDValidity: f.UIDValidity()}, nil
}

func (s *imapSession) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.view == nil {
		return nil
	}
	if err := s.view.folder.Sync(); err != nil {
		return imapErr(err)
	}
	return writeUpdates(w, s.view.refresh(allowExpunge))
}

func writeUpdates(w interface {
	WriteExpunge(uint32) error
	WriteNumMessages(uint32) error
	WriteMessageFlags(uint32, imap.UID, []imap.Flag) error
}, ups []update) error {
	for _, u := range ups {
		var err error
		switch u.kind {
		case updExpunge:
			err = w.WriteExpunge(u.seq)
		case updExists:
			err = w.WriteNumMessages(u.count)
		case updFlags:
			err = w.WriteMessageFlags(u.seq, imap.UID(u.uid), fromFlags(u.flags))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Idle tells the client of each change to its folder as it happens: the
// folder's Changed channel fires when the bridge delivers mail or another
// client changes it; a slow rescan catches other programs.
func (s *imapSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.view == nil {
		<-stop
		return nil
	}
	every := s.b.cfg.RescanInterval
	if every <= 0 {
		every = defaultRescan
	}
	t := s.b.clock.NewTicker(every)
	defer t.Stop()
	for {
		changed := s.view.folder.Changed()
		if err := writeUpdates(w, s.view.refresh(true)); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-s.b.stopping:
			return nil
		case <-changed:
		case <-t.C:
			if err := s.view.folder.Sync(); err != nil {
				return imapErr(err)
			}
		}
	}
}

func (s *imapSession) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if s.view.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "the folder is open read-only"}
	}
	var gone []uint32
	for _, m := range s.view.folder.Messages() {
		if m.Flags.Has(mailbox.FlagDeleted) && (uids == nil || uids.Contains(imap.UID(m.UID))) {
			gone = append(gone, m.UID)
		}
	}
	if err := s.view.folder.Remove(gone); err != nil {
		return imapErr(err)
	}
	for _, u := range s.view.refresh(true) {
		if u.kind == updExpunge {
			if err := w.WriteExpunge(u.seq); err != nil {
				return err
			}
		}
	}
	return nil
}

func ranges(set imap.NumSet) (byUID bool, rs []numRange) {
	switch set := set.(type) {
	case imap.SeqSet:
		for _, r := range set {
			rs = append(rs, numRange{r.Start, r.Stop})
		}
	case imap.UIDSet:
		byUID = true
		for _, r := range set {
			rs = append(rs, numRange{uint32(r.Start), uint32(r.Stop)})
		}
	}
	return byUID, rs
}

func (s *imapSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if s.view.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "the folder is open read-only"}
	}
	byUID, rs := ranges(numSet)
	idx := s.view.pick(byUID, rs)
	uids := make([]uint32, len(idx))
	for k, i := range idx {
		uids[k] = s.view.msgs[i].uid
	}
	op := map[imap.StoreFlagsOp]mailbox.FlagOp{imap.StoreFlagsSet: mailbox.FlagsReplace, imap.StoreFlagsAdd: mailbox.FlagsAdd, imap.StoreFlagsDel: mailbox.FlagsRemove}[flags.Op]
	changed, err := s.view.folder.SetFlags(uids, op, toFlags(flags.Flags))
	if err != nil {
		return imapErr(err)
	}
	now := map[uint32]mailbox.Flags{}
	for _, m := range changed {
		now[m.UID] = m.Flags
	}
	for _, i := range idx {
		m := &s.view.msgs[i]
		f, ok := now[m.uid]
		if !ok {
			continue
		}
		m.flags = f // told here, not again by the next poll
		if flags.Silent {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		if byUID {
			rw.WriteUID(imap.UID(m.uid))
		}
		rw.WriteFlags(fromFlags(f))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (s *imapSession) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	d, _, err := s.copy(numSet, dest, false)
	return d, err
}

func (s *imapSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	d, _, err := s.copy(numSet, dest, true)
	if err != nil {
		return err
	}
	if err := w.WriteCopyData(d); err != nil {
		return err
	}
	for _, u := range s.view.refresh(true) {
		if u.kind == updExpunge {
			if err := w.WriteExpunge(u.seq); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *imapSession) copy(numSet imap.NumSet, dest string, move bool) (*imap.CopyData, [][2]uint32, error) {
	if move && s.view.readOnly {
		return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "the folder is open read-only"}
	}
	dst, err := s.b.store.Folder(dest)
	if err != nil {
		if errors.Is(err, mailbox.ErrNoFolder) {
			return nil, nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: err.Error()}
		}
		return nil, nil, imapErr(err)
	}
	byUID, rs := ranges(numSet)
	var uids []uint32
	for _, i := range s.view.pick(byUID, rs) {
		uids = append(uids, s.view.msgs[i].uid)
	}
	pairs, err := s.view.folder.CopyTo(uids, dst, move)
	if err != nil && len(pairs) == 0 {
		return nil, nil, imapErr(err)
	}
	d := &imap.CopyData{UIDValidity: dst.UIDValidity()}
	for _, p := range pairs {
		d.SourceUIDs.AddNum(imap.UID(p[0]))
		d.DestUIDs.AddNum(imap.UID(p[1]))
	}
	return d, pairs, nil
}

func (s *imapSession) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	var seqs imap.SeqSet
	var uids imap.UIDSet
	d := &imap.SearchData{}
	for i, vm := range s.view.msgs {
		if vm.gone {
			continue
		}
		m, ok := s.view.folder.Message(vm.uid)
		if !ok {
			continue
		}
		ok, err := s.matches(uint32(i+1), m, criteria)
		if err != nil {
			return nil, imapErr(err)
		}
		if !ok {
			continue
		}
		n := uint32(i + 1)
		if kind == imapserver.NumKindUID {
			n = m.UID
		}
		if d.Min == 0 {
			d.Min = n
		}
		d.Max = n
		d.Count++
		seqs.AddNum(uint32(i + 1))
		uids.AddNum(imap.UID(m.UID))
	}
	d.All = seqs
	if kind == imapserver.NumKindUID {
		d.All = uids
	}
	return d, nil
}

var knownFlags = []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft, imap.FlagForwarded}

var flagNames = map[imap.Flag]mailbox.Flags{
	"\\seen": mailbox.FlagSeen, "\\answered": mailbox.FlagAnswered, "\\flagged": mailbox.FlagFlagged,
	"\\deleted": mailbox.FlagDeleted, "\\draft": mailbox.FlagDraft, "$forwarded": mailbox.FlagForwarded,
}

// toFlags keeps the flags a Maildir name can hold; keywords are dropped
// (PERMANENTFLAGS tells clients so).
func toFlags(fs []imap.Flag) mailbox.Flags {
	var out mailbox.Flags
	for _, f := range fs {
		out |= flagNames[imap.Flag(strings.ToLower(string(f)))]
	}
	return out
}

func fromFlags(f mailbox.Flags) []imap.Flag {
	out := []imap.Flag{}
	for _, k := range knownFlags {
		if f.Has(flagNames[imap.Flag(strings.ToLower(string(k)))]) {
			out = append(out, k)
		}
	}
	return out
}

// slogPrintf takes the libraries' Printf logging into the bridge's
// logger, at Info: most of it is clients hanging up mid-command, which
// mail clients do all the time.
type slogPrintf struct {
	log interface{ Info(string, ...any) }
}

func (l slogPrintf) Printf(format string, args ...any) {
	l.log.Info(strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// readMessage reads a whole message (with CRLF) into memory, for the
// FETCH items and SEARCH keys that parse it.
func readMessage(f *mailbox.Folder, uid uint32) ([]byte, mailbox.Message, error) {
	r, m, err := f.Open(uid)
	if err != nil {
		return nil, m, err
	}
	defer r.Close()
	var buf bytes.Buffer
	buf.Grow(int(min(m.Size, 64<<20)))
	_, err = io.Copy(&buf, io.LimitReader(r, m.Size+1))
	return buf.Bytes(), m, err
}

func (l slogPrintf) Println(args ...any) {
	l.log.Info(strings.TrimSpace(fmt.Sprintln(args...)))
}

// exactReader reads exactly left bytes: an EOF before them is
// io.ErrUnexpectedEOF.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	n, err := e.r.Read(p[:min(int64(len(p)), e.left)])
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
