package bridge

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/flowmail/flowmail/mailbox"
)

// wholeBody reports whether a section is the whole message (BODY[],
// RFC822), which is streamed from the file rather than parsed.
func wholeBody(bs *imap.FetchItemBodySection) bool {
	return bs.Specifier == imap.PartSpecifierNone && len(bs.Part) == 0
}

func (s *imapSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	byUID, rs := ranges(numSet)
	idx := s.view.pick(byUID, rs)
	markSeen := false
	parse := options.Envelope || options.BodyStructure != nil || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	for _, bs := range options.BodySection {
		markSeen = markSeen || !bs.Peek
		parse = parse || !wholeBody(bs)
	}
	markSeen = markSeen && !s.view.readOnly
	for _, i := range idx {
		vm := &s.view.msgs[i]
		m, ok := s.view.folder.Message(vm.uid)
		if !ok {
			continue // removed meanwhile: told at the next poll
		}
		flagsChanged := false
		if markSeen && !m.Flags.Has(mailbox.FlagSeen) {
			if ch, err := s.view.folder.SetFlags([]uint32{m.UID}, mailbox.FlagsAdd, mailbox.FlagSeen); err == nil && len(ch) == 1 {
				m, vm.flags, flagsChanged = ch[0], ch[0].Flags, true
			}
		}
		var raw []byte
		if parse {
			var err error
			if raw, m, err = readMessage(s.view.folder, m.UID); err != nil {
				s.b.log.Warn("reading a message for FETCH", "folder", s.view.folder.Name(), "uid", m.UID, "err", err)
				continue
			}
		}
		rw := w.CreateMessage(uint32(i + 1))
		rw.WriteUID(imap.UID(m.UID))
		if options.Flags || flagsChanged {
			rw.WriteFlags(fromFlags(m.Flags))
		}
		if options.InternalDate {
			rw.WriteInternalDate(m.Date)
		}
		if options.RFC822Size {
			rw.WriteRFC822Size(m.Size)
		}
		if options.Envelope {
			if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw))); err == nil {
				rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
			} else {
				rw.WriteEnvelope(&imap.Envelope{})
			}
		}
		if options.BodyStructure != nil {
			rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(raw)))
		}
		for _, bs := range options.BodySection {
			if err := s.writeSection(rw, bs, m, raw); err != nil {
				return err
			}
		}
		for _, bs := range options.BinarySection {
			b := imapserver.ExtractBinarySection(bytes.NewReader(raw), bs)
			wc := rw.WriteBinarySection(bs, int64(len(b)))
			if err := writeClose(wc, b); err != nil {
				return err
			}
		}
		for _, bs := range options.BinarySectionSize {
			rw.WriteBinarySectionSize(bs, imapserver.ExtractBinarySectionSize(bytes.NewReader(raw), bs))
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func writeClose(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeSection writes one BODY[...] item: the whole message streamed from
// its file (a mail may be far larger than memory allows to copy around),
// a part of it through go-imap's parser otherwise.
func (s *imapSession) writeSection(rw *imapserver.FetchResponseWriter, bs *imap.FetchItemBodySection, m mailbox.Message, raw []byte) error {
	if !wholeBody(bs) {
		part := imapserver.ExtractBodySection(bytes.NewReader(raw), bs)
		return writeClose(rw.WriteBodySection(bs, int64(len(part))), part)
	}
	r, m, err := s.view.folder.Open(m.UID)
	if err != nil {
		return writeClose(rw.WriteBodySection(bs, 0), nil)
	}
	defer r.Close()
	off, n := int64(0), m.Size
	if p := bs.Partial; p != nil {
		off = min(p.Offset, m.Size)
		n = min(m.Size-off, p.Size)
	}
	if _, err := io.CopyN(io.Discard, r, off); err != nil {
		return err
	}
	wc := rw.WriteBodySection(bs, n)
	if _, err := io.CopyN(wc, r, n); err != nil {
		wc.Close()
		return err
	}
	return wc.Close()
}

// matches evaluates SEARCH criteria on one message; the message is read
// only when a key needs its content.
func (s *imapSession) matches(seq uint32, m mailbox.Message, c *imap.SearchCriteria) (bool, error) {
	var raw []byte
	content := func() ([]byte, error) {
		if raw == nil {
			var err error
			raw, _, err = readMessage(s.view.folder, m.UID)
			if err != nil {
				return nil, err
			}
		}
		return raw, nil
	}
	return match(seq, m, c, content)
}

func match(seq uint32, m mailbox.Message, c *imap.SearchCriteria, content func() ([]byte, error)) (bool, error) {
	for _, set := range c.SeqNum {
		if !set.Contains(seq) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if !set.Contains(imap.UID(m.UID)) {
			return false, nil
		}
	}
	if !inDates(m.Date, c.Since, c.Before) {
		return false, nil
	}
	for _, f := range c.Flag {
		if !m.Flags.Has(toFlags([]imap.Flag{f})) || toFlags([]imap.Flag{f}) == 0 {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if g := toFlags([]imap.Flag{f}); g != 0 && m.Flags.Has(g) {
			return false, nil
		}
	}
	if c.Larger != 0 && m.Size <= c.Larger || c.Smaller != 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		raw, err := content()
		if err != nil {
			return false, err
		}
		e, err := gomessage.Read(bytes.NewReader(raw))
		if e == nil {
			return false, nil
		}
		_ = err // unknown charsets still have readable headers
		h := gomail.Header{Header: e.Header}
		for _, hc := range c.Header {
			if !headerContains(h.FieldsByKey(hc.Key), hc.Value) {
				return false, nil
			}
		}
		if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
			t, err := h.Date()
			if err != nil || !inDates(t, c.SentSince, c.SentBefore) {
				return false, nil
			}
		}
		for _, text := range c.Text {
			if !bytes.Contains(bytes.ToLower(raw), bytes.ToLower([]byte(text))) {
				return false, nil
			}
		}
		for _, text := range c.Body {
			_, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
			if !bytes.Contains(bytes.ToLower(body), bytes.ToLower([]byte(text))) {
				return false, nil
			}
		}
	}
	for i := range c.Not {
		ok, err := match(seq, m, &c.Not[i], content)
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := match(seq, m, &c.Or[i][0], content)
		if err != nil {
			return false, err
		}
		b, err := match(seq, m, &c.Or[i][1], content)
		if err != nil {
			return false, err
		}
		if !a && !b {
			return false, nil
		}
	}
	return true, nil
}

// inDates compares dates only, as IMAP asks (RFC 3501 6.4.4).
func inDates(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return (since.IsZero() || !d.Before(since)) && (before.IsZero() || d.Before(before))
}

func headerContains(fields gomessage.HeaderFields, v string) bool {
	v = strings.ToLower(v)
	for fields.Next() {
		t, _ := fields.Text()
		if strings.Contains(strings.ToLower(t), v) {
			return true
		}
	}
	return false
}
