package sha512x

import (
	"crypto/sha512"
	"encoding/binary"
	"testing"

	"github.com/flowmail/flowmail/internal/testseed"
)

// allKernels is every kernel this machine runs and the portable one at
// every width.
func allKernels() []*Kernel {
	ks := Kernels()
	for l := 1; l <= MaxLanes; l++ {
		ks = append(ks, Portable(l))
	}
	return ks
}

func newState(k *Kernel) *State {
	s := new(State)
	s.Init(k)
	return s
}

// pad returns msg with SHA-512 padding, as whole chunks.
func pad(msg []byte) []byte {
	n := len(msg)
	p := append(append(make([]byte, 0, n+ChunkSize+17), msg...), 0x80)
	for len(p)%ChunkSize != ChunkSize-16 {
		p = append(p, 0)
	}
	p = binary.BigEndian.AppendUint64(p, 0)
	return binary.BigEndian.AppendUint64(p, uint64(n)*8)
}

// TestKernelsMatchSHA512 hashes random messages, one per lane, of lengths
// that pad to the same number of chunks, placed at random offsets in
// separate buffers, in one to three Compress calls, and compares every
// lane's digest with crypto/sha512.
func TestKernelsMatchSHA512(t *testing.T) {
	r := testseed.Rand(t)
	for _, k := range allKernels() {
		t.Run(k.Name, func(t *testing.T) {
			s := newState(k)
			for range 300 {
				chunks := 1 + r.IntN(5)
				lo := max(0, (chunks-1)*ChunkSize-16)
				msgs := make([][]byte, k.Lanes)
				src := make([][]byte, k.Lanes)
				for l := range msgs {
					msgs[l] = make([]byte, lo+r.IntN(chunks*ChunkSize-16-lo))
					for i := range msgs[l] {
						msgs[l][i] = byte(r.Uint32())
					}
					p := pad(msgs[l])
					if len(p) != chunks*ChunkSize {
						t.Fatalf("length %d pads to %d bytes, want %d chunks", len(msgs[l]), len(p), chunks)
					}
					off := r.IntN(64)
					src[l] = append(make([]byte, off, off+len(p)), p...)[off:]
					s.Reset(l)
				}
				for done := 0; done < chunks; {
					n := 1 + r.IntN(chunks-done)
					part := make([][]byte, k.Lanes)
					for l := range part {
						part[l] = src[l][done*ChunkSize:]
					}
					s.Compress(part, n)
					done += n
				}
				for l, m := range msgs {
					if got, want := s.Sum256(l), sha512.Sum512_256(m); got != want {
						t.Fatalf("lane %d, %d bytes: got %x, want %x", l, len(m), got, want)
					}
				}
			}
		})
	}
}

// TestResetTouchesOneLane: resetting a lane leaves the others' states.
func TestResetTouchesOneLane(t *testing.T) {
	for _, k := range allKernels() {
		s, src := newState(k), make([][]byte, k.Lanes)
		for l := range src {
			src[l] = pad([]byte{byte(l)})
			s.Reset(l)
		}
		s.Compress(src, 1)
		s.Reset(0)
		for l := 1; l < k.Lanes; l++ {
			if got, want := s.Sum256(l), sha512.Sum512_256([]byte{byte(l)}); got != want {
				t.Fatalf("%s: lane %d changed by Reset(0)", k.Name, l)
			}
		}
	}
}

func TestCompressChecksSources(t *testing.T) {
	for _, k := range allKernels() {
		s, short := newState(k), make([][]byte, k.Lanes)
		for l := range short {
			short[l] = make([]byte, 2*ChunkSize)
		}
		short[k.Lanes-1] = short[k.Lanes-1][:2*ChunkSize-1]
		for name, call := range map[string]func(){
			"short lane":    func() { s.Compress(short, 2) },
			"missing lane":  func() { s.Compress(short[:k.Lanes-1], 1) },
			"an extra lane": func() { s.Compress(append(short, short[0]), 1) },
		} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("%s: Compress with %s did not panic", k.Name, name)
					}
				}()
				call()
			}()
		}
	}
}

// BenchmarkCompress reports single-core SHA-512 compressions per second
// per kernel, 32 chunks (a 4 KiB block) per lane per call, beside
// crypto/sha512 hashing 4 KiB:
//
//	go test ./block/internal/sha512x -run '^$' -bench Compress -count=3
func BenchmarkCompress(b *testing.B) {
	const chunks = 32
	msg := make([]byte, chunks*ChunkSize)
	for _, k := range append(Kernels(), Portable(1)) {
		b.Run(k.Name, func(b *testing.B) {
			var s State
			s.Init(k)
			src := make([][]byte, k.Lanes)
			for l := range src {
				src[l] = msg
			}
			b.SetBytes(int64(len(msg) * k.Lanes))
			for b.Loop() {
				s.Compress(src, chunks)
			}
			b.ReportMetric(float64(b.N*chunks*k.Lanes)/b.Elapsed().Seconds(), "compressions/s")
		})
	}
	b.Run("crypto-sha512", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			sha512.Sum512_256(msg)
		}
		b.ReportMetric(float64(b.N*(chunks+1))/b.Elapsed().Seconds(), "compressions/s")
	})
}
