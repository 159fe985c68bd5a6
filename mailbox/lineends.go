package mailbox

import (
	"bufio"
	"io"
)

// lfWriter writes what it is given with each CRLF turned into LF (the
// line ends of a Maildir file), and counts the size the result has once
// served with CRLF again. A CR that ends one Write waits for the next.
type lfWriter struct {
	w    *bufio.Writer
	cr   bool  // a CR is held back
	prev byte  // the last byte written out
	crlf int64 // size with CRLF line ends
}

func (l *lfWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if l.cr {
			l.cr = false
			if b != '\n' {
				if err := l.put('\r'); err != nil {
					return 0, err
				}
			}
		}
		if b == '\r' {
			l.cr = true
			continue
		}
		if err := l.put(b); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (l *lfWriter) put(b byte) error {
	l.crlf++
	if b == '\n' && l.prev != '\r' {
		l.crlf++
	}
	l.prev = b
	return l.w.WriteByte(b)
}

// flush writes a CR held back at the end.
func (l *lfWriter) flush() error {
	if l.cr {
		l.cr = false
		return l.put('\r')
	}
	return nil
}

// crlfReader serves a Maildir file with each LF not after a CR as CRLF.
type crlfReader struct {
	r       *bufio.Reader
	c       io.Closer
	prev    byte
	pending bool // an LF is owed after the CR just returned
}

func (c *crlfReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.pending {
			p[n] = '\n'
			n++
			c.pending = false
			c.prev = '\n'
			continue
		}
		b, err := c.r.ReadByte()
		if err != nil {
			if n > 0 && err == io.EOF {
				return n, nil
			}
			return n, err
		}
		if b == '\n' && c.prev != '\r' {
			p[n] = '\r'
			n++
			c.pending = true
			c.prev = '\r'
			continue
		}
		p[n] = b
		n++
		c.prev = b
	}
	return n, nil
}

func (c *crlfReader) Close() error { return c.c.Close() }
