package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// dribble delivers its bytes a few at a time and counts them, so a test
// can compare each allocation with what had arrived.
type dribble struct {
	b    []byte
	step int
	sent int
}

func (d *dribble) Read(p []byte) (int, error) {
	if d.sent == len(d.b) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), d.step)], d.b[d.sent:])
	d.sent += n
	return n, nil
}

func TestReadFrameAllocatesOnlyAsBytesArrive(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), MaxFrameSize/16)
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"WholeMaximalFrame", appendFrame(nil, payload), nil},
		{"MaximalLengthThenStall", append(binary.BigEndian.AppendUint32(nil, MaxFrameSize), payload[:100]...), ErrMalformed},
		{"MaximalLengthHalfSent", append(binary.BigEndian.AppendUint32(nil, MaxFrameSize), payload[:MaxFrameSize/2]...), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &dribble{b: tt.input, step: 1000}
			total := 0
			alloc := func(n int) []byte {
				arrived := max(0, d.sent-frameHeaderSize)
				if n > max(frameFirstChunk, frameGrowth*arrived) {
					t.Errorf("allocated %d bytes with %d of the payload arrived", n, arrived)
				}
				total += n
				return make([]byte, n)
			}
			got, err := readFrameFrom(d, MaxFrameSize, &frameBuffers{alloc: alloc})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err == nil && !bytes.Equal(got, payload) {
				t.Fatal("payload differs")
			}
			// Growing by 4 costs at most a third more than the frame.
			if limit := frameFirstChunk + (frameGrowth*(d.sent-frameHeaderSize))*4/3; total > limit {
				t.Errorf("allocated %d bytes in all for %d arrived", total, d.sent)
			}
		})
	}
}

func TestReadFrameAllocations(t *testing.T) {
	// A small frame costs its buffer and the two probes of the stream
	// (length, end); a full block three buffers (16, 64, 256 KiB).
	for _, tt := range []struct {
		size   int
		allocs float64
	}{{100, 3}, {block256K, 5}} {
		frame := appendFrame(nil, make([]byte, tt.size))
		r := bytes.NewReader(frame)
		got := testing.AllocsPerRun(20, func() {
			r.Reset(frame)
			if _, err := readFrame(r, MaxFrameSize); err != nil {
				t.Fatal(err)
			}
		})
		if got > tt.allocs {
			t.Errorf("frame of %d bytes: %v allocations, want at most %v", tt.size, got, tt.allocs)
		}
	}
}

const block256K = 256 << 10

func TestFrameBuffersRecycleOnlyWhatWasOutgrown(t *testing.T) {
	var bufs frameBuffers
	read := func(size int, fill byte) []byte {
		t.Helper()
		p, err := readFrameFrom(&dribble{b: appendFrame(nil, bytes.Repeat([]byte{fill}, size)), step: 5000}, MaxFrameSize, &bufs)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var kept [][]byte
	for i, size := range []int{frameFirstChunk, frameFirstChunk * frameGrowth, block256K, frameFirstChunk, frameFirstChunk * frameGrowth, block256K} {
		kept = append(kept, read(size, byte('a'+i)))
	}
	for i, p := range kept {
		if !bytes.Equal(p, bytes.Repeat([]byte{byte('a' + i)}, len(p))) {
			t.Errorf("frame %d changed after later reads: a buffer the caller kept was recycled", i)
		}
	}
}

// deadlineLog is a stream that records its read deadlines.
type deadlineLog struct {
	r         io.Reader
	deadlines []time.Time
}

func (d *deadlineLog) Read(p []byte) (int, error) { return d.r.Read(p) }
func (d *deadlineLog) SetReadDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

func TestPacedReaderDeadlineGrowsWithBytes(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	const grace, rate = 5 * time.Second, 4096
	end := start.Add(10 * time.Second)
	s := &deadlineLog{r: &dribble{b: make([]byte, 40<<10), step: 1024}}
	p := newPacedReader(s, start, grace, rate, end)
	if len(s.deadlines) != 1 || !s.deadlines[0].Equal(start.Add(grace)) {
		t.Fatalf("first deadline %v, want start + grace", s.deadlines)
	}
	buf := make([]byte, 4096)
	for i := range 2 {
		if _, err := io.ReadFull(p, buf); err != nil {
			t.Fatal(err)
		}
		// 4 KiB more bought one more second.
		want := start.Add(grace + time.Duration(i+1)*time.Second)
		if got := s.deadlines[len(s.deadlines)-1]; !got.Equal(want) {
			t.Errorf("after %d KiB: deadline %v, want %v", 4*(i+1), got.Sub(start), want.Sub(start))
		}
	}
	if _, err := io.Copy(io.Discard, p); err != nil {
		t.Fatal(err)
	}
	if got := s.deadlines[len(s.deadlines)-1]; !got.Equal(end) {
		t.Errorf("after 40 KiB: deadline %v, want the request's end %v", got.Sub(start), end.Sub(start))
	}
	// A trickle moves the deadline little, and only in steps.
	s = &deadlineLog{r: &dribble{b: make([]byte, 100), step: 1}}
	p = newPacedReader(s, start, grace, rate, end)
	io.Copy(io.Discard, p)
	if got := s.deadlines[len(s.deadlines)-1]; got.After(start.Add(grace + 100*time.Second/rate)) {
		t.Errorf("100 bytes one at a time moved the deadline to %v", got.Sub(start))
	}
	if len(s.deadlines) > 2 {
		t.Errorf("%d deadline updates for 100 bytes", len(s.deadlines))
	}
}
