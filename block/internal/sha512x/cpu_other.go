//go:build !amd64 || purego

package sha512x

// simd: no vector kernels off amd64 or under the purego tag.
var simd []*Kernel

func (k *Kernel) runSIMD(*uint64, *[MaxLanes]*byte, uint64) bool { return false }
