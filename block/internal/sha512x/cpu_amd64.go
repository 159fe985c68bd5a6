//go:build !purego

package sha512x

import "golang.org/x/sys/cpu"

// simd lists the vector kernels this CPU and OS support, fastest first.
// cpu.X86.HasAVX512F also checks that the OS saves ZMM state; the byte
// swap of each gathered word needs AVX512BW.
var simd = simdKernels()

func simdKernels() []*Kernel {
	var ks []*Kernel
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW {
		ks = append(ks, &Kernel{Name: "avx512", Lanes: 8, MinBatch: 2, isa: isaAVX512})
	}
	if cpu.X86.HasAVX2 {
		ks = append(ks, &Kernel{Name: "avx2", Lanes: 4, MinBatch: 4, isa: isaAVX2})
	}
	return ks
}

// runSIMD runs k's vector kernel and reports whether k has one.
func (k *Kernel) runSIMD(p *uint64, src *[MaxLanes]*byte, n uint64) bool {
	switch k.isa {
	case isaAVX512:
		blocksAVX512(p, src, n)
	case isaAVX2:
		blocksAVX2(p, src, n)
	default:
		return false
	}
	return true
}
