//go:build !purego

package pow

import "golang.org/x/sys/cpu"

// simdKernels lists the vector kernels this CPU and OS support, fastest
// first. cpu.X86.HasAVX512F also checks that the OS saves ZMM state.
func simdKernels() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512)
	}
	if cpu.X86.HasAVX2 {
		ks = append(ks, avx2)
	}
	return ks
}
