package blockstore

import (
	"sync"
	"sync/atomic"
)

// lifecycle lets Close wait for the calls in progress and refuse new ones.
// Unlike a sync.RWMutex it lets a call re-enter (Range's fn may call the
// store) while Close waits. enter and leave are two atomic adds: every Get
// passes here, and a mutex taken by all of them was a convoy on a busy
// machine.
type lifecycle struct {
	closed   atomic.Bool
	inflight atomic.Int64

	mu   sync.Mutex // guards idle's waits
	idle sync.Cond
}

// enter registers a call; it fails with ErrClosed once shut has begun.
func (l *lifecycle) enter() error {
	if l.closed.Load() {
		return ErrClosed
	}
	l.inflight.Add(1)
	// shut may have begun between the check and the add: it then waits
	// for this call unless we leave at once.
	if l.closed.Load() {
		l.leave()
		return ErrClosed
	}
	return nil
}

func (l *lifecycle) leave() {
	if l.inflight.Add(-1) == 0 && l.closed.Load() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.idle.L != nil {
			l.idle.Broadcast()
		}
	}
}

// shut refuses new calls and waits until those in progress have left.
func (l *lifecycle) shut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed.Store(true)
	if l.idle.L == nil {
		l.idle.L = &l.mu
	}
	for l.inflight.Load() > 0 {
		l.idle.Wait()
	}
}
