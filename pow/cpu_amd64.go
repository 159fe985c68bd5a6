//go:build !purego

package pow

import "golang.org/x/sys/cpu"

// simdKernels lists the vector kernels this CPU and OS support, fastest
// first. cpu.X86.HasAVX512F also checks that the OS saves ZMM state.
func simdKernels() []kernel {
	var ks []kernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, kernel{name: "avx512", lanes: 8, v3: kernelV3AVX512, any: kernelAnyAVX512, anyTwo: kernelAnyTwoAVX512})
	}
	if cpu.X86.HasAVX2 {
		ks = append(ks, kernel{name: "avx2", lanes: 4, v3: kernelV3AVX2, any: kernelAnyAVX2, anyTwo: kernelAnyTwoAVX2})
	}
	return ks
}
