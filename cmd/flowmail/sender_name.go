package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"

	"github.com/flowmail/flowmail/block"
	"github.com/flowmail/flowmail/delivery"
	"github.com/flowmail/flowmail/identity"
	"github.com/flowmail/flowmail/mail"
	"github.com/flowmail/flowmail/naming"
)

// The carried certificate's header fields (naming.CertHeader,
// naming.NameHeader; docs/PROTOCOL.md 19.8).
const (
	nameCertHeader = naming.CertHeader
	nameHeader     = naming.NameHeader
	// maxHeaderBlock bounds the header fetch reads of a delivered mail:
	// a delivered mail's header ends within it (docs/PROTOCOL.md 9.1).
	maxHeaderBlock = mail.MaxHeaderSize
)

var errBadNameCert = naming.ErrCarried

// writeNameCertHeader writes the header field carrying cert, folded.
func writeNameCertHeader(w io.Writer, cert []byte) error {
	_, err := io.WriteString(w, naming.CarriedField(cert))
	return err
}

// headerField is one field of a header block, its lines as read.
type headerField struct {
	name  string // as written
	lines []string
}

func (f headerField) value() string {
	_, v, _ := strings.Cut(strings.Join(f.lines, ""), ":")
	return v
}

// readHeaderBlock reads a message's header fields up to the blank line,
// at most maxHeaderBlock bytes. It returns the fields, the line ending
// used and the number of bytes the header took (blank line included).
func readHeaderBlock(r *bufio.Reader) ([]headerField, string, int, error) {
	var fields []headerField
	eol, total := "\n", 0
	for {
		line, err := r.ReadString('\n')
		total += len(line)
		if total > maxHeaderBlock {
			return nil, "", 0, fmt.Errorf("%w: header over %d bytes", errBadNameCert, maxHeaderBlock)
		}
		if err != nil {
			return nil, "", 0, fmt.Errorf("%w: header without its end: %w", errBadNameCert, err)
		}
		if strings.HasSuffix(line, "\r\n") {
			eol = "\r\n"
		}
		switch {
		case strings.TrimRight(line, "\r\n") == "":
			return fields, eol, total, nil
		case line[0] == ' ' || line[0] == '\t':
			if len(fields) == 0 {
				return nil, "", 0, fmt.Errorf("%w: header starts with a continuation line", errBadNameCert)
			}
			fields[len(fields)-1].lines = append(fields[len(fields)-1].lines, line)
		default:
			name, _, _ := strings.Cut(line, ":")
			fields = append(fields, headerField{name: strings.TrimSpace(name), lines: []string{line}})
		}
	}
}

// checkCarriedName verifies the certificate a mail from sender carried:
// a name certificate, binding the name to the sender (the envelope's
// verified signer), that holds against DNS and the DHT now.
func checkCarriedName(ctx context.Context, r *naming.Resolver, value string, sender block.ID, now time.Time) (*naming.Binding, error) {
	rec, err := naming.ParseCarried(value)
	if err != nil {
		return nil, err
	}
	if rec.Name.Address != sender {
		return nil, fmt.Errorf("%w: it binds %s to %s, and the mail is signed by %s", errBadNameCert, rec.Name.Name, identity.FormatAddress(rec.Name.Address), identity.FormatAddress(sender))
	}
	return r.Verify(ctx, rec.Name, now)
}

// showSenderName rewrites the header of a delivered mail (path) from
// sender: a carried certificate that checks puts its name in From and in
// a Flowmail-Name field; one that does not leaves From as the sender
// wrote it and says why in Flowmail-Name. Flowmail-Name fields the sender
// wrote are dropped, and so is a From display name holding an @ that no
// certificate backs. A mail that has none of these is left untouched. It
// returns the name shown ("" when none) and why a carried certificate
// was refused.
func showSenderName(ctx context.Context, r *naming.Resolver, path string, sender block.ID, now time.Time) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	fields, eol, _, err := readHeaderBlock(br)
	if err != nil {
		return "", err
	}
	var cert *headerField
	touched, lookalike := false, false
	for i := range fields {
		switch {
		case strings.EqualFold(fields[i].name, nameCertHeader):
			if cert != nil {
				return "", fmt.Errorf("%w: two %s fields", errBadNameCert, nameCertHeader)
			}
			cert, touched = &fields[i], true
		case strings.EqualFold(fields[i].name, nameHeader):
			touched = true
		case strings.EqualFold(fields[i].name, "From"):
			// A display name that looks like a name (alice@example.com)
			// is shown only when a certificate says so.
			if a, err := gomail.ParseAddress(strings.TrimSpace(fields[i].value())); err == nil && strings.Contains(a.Name, "@") {
				lookalike, touched = true, true
			}
		}
	}
	if !touched {
		return "", nil
	}
	var shown string
	var refused error
	note := "none (the mail carries no name certificate)"
	if lookalike {
		note = "none (the mail carries no name certificate; the display name that looked like one was removed)"
	}
	if cert != nil {
		b, err := checkCarriedName(ctx, r, cert.value(), sender, now)
		if err != nil {
			refused = err
			note = "none (" + strings.NewReplacer("\r", " ", "\n", " ").Replace(err.Error()) + ")"
		} else {
			shown = b.Name
			dnssec := "not DNSSEC-validated"
			if b.Domain.Validated {
				dnssec = "DNSSEC-validated"
			}
			note = fmt.Sprintf("%s (certified by %s; DNS answer %s)", b.Name, b.Domain.Name, dnssec)
		}
	}
	var head bytes.Buffer
	for _, fl := range fields {
		switch {
		case strings.EqualFold(fl.name, nameHeader):
			continue
		case (shown != "" || lookalike) && strings.EqualFold(fl.name, "From"):
			from := gomail.Address{Name: shown, Address: identity.FormatAddress(sender) + "@flowmail.invalid"}
			head.WriteString("From: " + from.String() + eol)
			continue
		}
		for _, l := range fl.lines {
			head.WriteString(l)
		}
	}
	head.WriteString(nameHeader + ": " + note + eol + eol)
	// The Maildir's tmp/ holds the new file until it replaces the old.
	tmp, err := os.CreateTemp(filepath.Join(filepath.Dir(filepath.Dir(path)), "tmp"), "name-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(head.Bytes()); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := io.Copy(tmp, br); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return shown, refused
}

// showSenderNames puts the certified names of a fetch's senders in the
// From of their mails (showSenderName), saying on stderr what it showed
// and what it refused.
func showSenderNames(ctx context.Context, s *streams, r *naming.Resolver, rep *delivery.FetchReport) {
	for _, d := range rep.Delivered {
		name, err := showSenderName(ctx, r, d.Path, d.From, time.Now())
		switch {
		case err != nil:
			fmt.Fprintf(s.err, "warning: %s: the sender's name is not shown: %v\n", d.Path, nameAdvice(err, ""))
		case name != "":
			fmt.Fprintf(s.err, "%s is from %s (its certificate checked)\n", d.Path, name)
		}
	}
}
