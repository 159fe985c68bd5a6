package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// frameHeaderSize is the u32 length before every frame's payload.
const frameHeaderSize = 4

// ErrMalformed is what a reader returns for a frame it cannot accept other
// than for its size: a zero length, a stream that ends inside the frame or
// carries bytes after it. A responder resets the stream with
// CodeMalformed.
var ErrMalformed = errors.New("transport: malformed frame")

// checkPayload applies the frame length rule (1 to MaxFrameSize) to a
// payload about to be sent.
func checkPayload(n int) error {
	switch {
	case n == 0:
		return ErrEmptyPayload
	case n > MaxFrameSize:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	return nil
}

// appendFrame appends the frame of payload to dst.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// writeFrame writes payload as one frame. The header goes in its own
// Write: a QUIC stream buffers so small a write and sends it with the
// payload, which saves copying the payload into a new buffer.
func writeFrame(w io.Writer, payload []byte) error {
	if err := checkPayload(len(payload)); err != nil {
		return err
	}
	var hdr [frameHeaderSize]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(payload)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// frameFirstChunk is the buffer a reader starts a frame with; it grows
// by frameGrowth as the payload arrives, so a peer that announces a large
// frame and sends little of it costs little memory.
const (
	frameFirstChunk = 16 << 10
	frameGrowth     = 4
)

// readFrame reads the one frame a stream carries and checks that the
// stream ends right after it. The length is checked against max before a
// byte of payload is read, and the buffer is never larger than
// frameFirstChunk or frameGrowth times what has arrived.
func readFrame(r io.Reader, max int) ([]byte, error) {
	return readFrameFrom(r, max, nil)
}

// frameBuffers hands out the buffers a frame reader grows through and
// takes back those it outgrew (they never leave the reader, unlike the
// last, which its caller keeps). A nil *frameBuffers allocates each.
type frameBuffers struct {
	// alloc, when set, makes every buffer and nothing is recycled: tests
	// count with it.
	alloc func(n int) []byte
	small sync.Pool // *[frameFirstChunk]byte
	large sync.Pool // *[frameFirstChunk * frameGrowth]byte
}

func (f *frameBuffers) get(n int) []byte {
	switch {
	case f == nil:
		return make([]byte, n)
	case f.alloc != nil:
		return f.alloc(n)
	case n == frameFirstChunk:
		if b, ok := f.small.Get().(*[frameFirstChunk]byte); ok {
			return b[:]
		}
	case n == frameFirstChunk*frameGrowth:
		if b, ok := f.large.Get().(*[frameFirstChunk * frameGrowth]byte); ok {
			return b[:]
		}
	}
	return make([]byte, n)
}

// put takes back a buffer the reader outgrew.
func (f *frameBuffers) put(b []byte) {
	if f == nil || f.alloc != nil {
		return
	}
	switch b = b[:cap(b)]; len(b) {
	case frameFirstChunk:
		f.small.Put((*[frameFirstChunk]byte)(b))
	case frameFirstChunk * frameGrowth:
		f.large.Put((*[frameFirstChunk * frameGrowth]byte)(b))
	}
}

// readFrameFrom is readFrame with the buffers of bufs.
func readFrameFrom(r io.Reader, max int, bufs *frameBuffers) ([]byte, error) {
	var hdr [frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, frameReadError("length", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: zero length", ErrMalformed)
	case uint64(n) > uint64(max):
		return nil, fmt.Errorf("%w: length %d, limit %d", ErrFrameTooLarge, n, max)
	}
	size := int(n)
	payload := bufs.get(min(size, frameFirstChunk))[:0]
	for len(payload) < size {
		if len(payload) == cap(payload) {
			grown := bufs.get(min(size, frameGrowth*cap(payload)))
			grown = grown[:copy(grown, payload)]
			bufs.put(payload)
			payload = grown
		}
		k, err := r.Read(payload[len(payload):cap(payload)])
		payload = payload[:len(payload)+k]
		if err != nil && len(payload) < size {
			bufs.put(payload)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, frameReadError("payload", err)
		}
	}
	var one [1]byte
	switch k, err := r.Read(one[:]); {
	case k > 0:
		return nil, fmt.Errorf("%w: bytes after the frame", ErrMalformed)
	case err == io.EOF:
		return payload, nil
	case err == nil:
		// A reader may return 0, nil; ask once more, blocking until the
		// stream ends or a byte arrives.
		if k, err = io.ReadFull(r, one[:]); k > 0 {
			return nil, fmt.Errorf("%w: bytes after the frame", ErrMalformed)
		}
		if err == io.EOF {
			return payload, nil
		}
		return nil, frameReadError("end", err)
	default:
		return nil, frameReadError("end", err)
	}
}

// readDeadliner is the part of a QUIC stream a pacedReader needs.
type readDeadliner interface {
	io.Reader
	SetReadDeadline(time.Time) error
}

// pacedReader enforces the progress deadline on a request's bytes
// (docs/PROTOCOL.md section 7): they must all have arrived by start +
// FrameGrace + received/MinFrameRate, and never later than end. So a
// peer that trickles bytes, or announces a length and stalls, loses the
// stream within FrameGrace plus what its bytes bought, while an honest
// request of any size keeps its time.
type pacedReader struct {
	s        readDeadliner
	start    time.Time
	grace    time.Duration
	rate     int // bytes per second
	end      time.Time
	received int
	deadline time.Time // the read deadline set on s
}

// deadlineStep is how far the deadline must move before it is set
// again, so a fast stream does not reset it on every read.
const deadlineStep = time.Second

func newPacedReader(s readDeadliner, start time.Time, grace time.Duration, rate int, end time.Time) *pacedReader {
	p := &pacedReader{s: s, start: start, grace: grace, rate: rate, end: end}
	p.deadline = p.due()
	s.SetReadDeadline(p.deadline)
	return p
}

// due is when the bytes after those received must have arrived.
func (p *pacedReader) due() time.Time {
	d := p.start.Add(p.grace + time.Duration(float64(p.received)/float64(p.rate)*float64(time.Second)))
	if d.After(p.end) {
		return p.end
	}
	return d
}

func (p *pacedReader) Read(b []byte) (int, error) {
	n, err := p.s.Read(b)
	if n > 0 {
		p.received += n
		if d := p.due(); d.Sub(p.deadline) >= deadlineStep || (d.Equal(p.end) && !p.deadline.Equal(p.end)) {
			p.deadline = d
			p.s.SetReadDeadline(d)
		}
	}
	return n, err
}

// frameReadError turns an early end of stream into ErrMalformed and keeps
// every other error (resets, deadlines) as it is.
func frameReadError(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream ended inside the frame %s", ErrMalformed, part)
	}
	return fmt.Errorf("reading frame %s: %w", part, err)
}
