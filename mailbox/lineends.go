package mailbox

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
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

// toLF rewrites a delivered file that holds CRLF line ends with LF ones
// (a fetch of an older flowmail delivers CRLF): the new content is
// written in tmpDir and renamed over the file, so a crash leaves the old
// content or the new under the same name, never both.
func toLF(path, tmpDir string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	br := bufio.NewReaderSize(in, 64<<10)
	found := false
	for !found {
		line, err := br.ReadSlice('\n')
		found = bytes.HasSuffix(line, []byte("\r\n"))
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
	}
	if !found {
		return nil
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return err
	}
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(tmpDir, "lf-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 64<<10)
	lw := &lfWriter{w: bw}
	_, err = io.Copy(lw, bufio.NewReaderSize(in, 64<<10))
	if err == nil {
		err = lw.flush()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp.Name(), fi.ModTime(), fi.ModTime())
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return err
}
