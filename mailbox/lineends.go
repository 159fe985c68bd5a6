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
	n := len(p)
	for len(p) > 0 {
		if l.cr {
			l.cr = false
			if p[0] != '\n' {
				if err := l.put([]byte{'\r'}); err != nil {
					return 0, err
				}
			}
		}
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			return n, l.put(p)
		}
		if err := l.put(p[:i]); err != nil {
			return 0, err
		}
		p, l.cr = p[i+1:], true
	}
	return n, nil
}

// put writes b, which holds no CR except a lone one put back, and counts
// its size with CRLF line ends: each LF not after a CR counts two.
func (l *lfWriter) put(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	lfs := bytes.Count(b, []byte{'\n'})
	if b[0] == '\n' && l.prev == '\r' {
		lfs--
	}
	l.crlf += int64(len(b) + lfs)
	l.prev = b[len(b)-1]
	_, err := l.w.Write(b)
	return err
}

// flush writes a CR held back at the end.
func (l *lfWriter) flush() error {
	if l.cr {
		l.cr = false
		return l.put([]byte{'\r'})
	}
	return nil
}

// CRLFReader yields r's bytes with every LF not after a CR made CRLF:
// a Maildir file as IMAP serves it, a submitted message as it is signed.
type CRLFReader struct {
	r      io.Reader
	prevCR bool   // the last byte yielded was a CR
	lf     bool   // a LF is owed after the CR just yielded
	buf    []byte // read from r, not yet yielded
	store  []byte // what buf is read into
	err    error
}

// NewCRLFReader reads r through a CRLFReader.
func NewCRLFReader(r io.Reader) *CRLFReader { return &CRLFReader{r: r} }

func (c *CRLFReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case c.lf:
			p[n], c.lf, c.prevCR = '\n', false, false
			n++
			continue
		case len(c.buf) == 0:
			if c.err != nil || n > 0 {
				return c.result(n)
			}
			if c.store == nil {
				c.store = make([]byte, 32<<10)
			}
			m, err := c.r.Read(c.store)
			c.buf, c.err = c.store[:m], err
			continue
		case c.buf[0] == '\n' && !c.prevCR:
			p[n], c.buf, c.lf, c.prevCR = '\r', c.buf[1:], true, true
			n++
			continue
		}
		// Up to the next LF not right at the start: copied as it is.
		chunk := c.buf
		if i := bytes.IndexByte(c.buf[1:], '\n'); i >= 0 {
			chunk = c.buf[:i+1]
		}
		k := copy(p[n:], chunk)
		c.prevCR = p[n+k-1] == '\r'
		c.buf, n = c.buf[k:], n+k
	}
	return c.result(n)
}

func (c *CRLFReader) result(n int) (int, error) {
	if n == 0 && c.err != nil {
		return 0, c.err
	}
	return n, nil
}

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
