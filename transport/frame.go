package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// readFrame reads the one frame a stream carries and checks that the
// stream ends right after it. The length is checked against max before a
// byte of payload is read or allocated.
func readFrame(r io.Reader, max int) ([]byte, error) {
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
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, frameReadError("payload", err)
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

// frameReadError turns an early end of stream into ErrMalformed and keeps
// every other error (resets, deadlines) as it is.
func frameReadError(part string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream ended inside the frame %s", ErrMalformed, part)
	}
	return fmt.Errorf("reading frame %s: %w", part, err)
}
