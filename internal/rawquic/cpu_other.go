//go:build !unix

package rawquic

import (
	"errors"
	"time"
)

// ProcessCPU is not available here: it reads getrusage(2).
func ProcessCPU() (time.Duration, error) {
	return 0, errors.ErrUnsupported
}
