//go:build !amd64 || purego

package pow

// simdKernels: none off amd64 or under the purego tag.
func simdKernels() []kernel { return nil }
