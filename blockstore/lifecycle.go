package blockstore

import "sync"

// lifecycle lets Close wait for the calls in progress and refuse new ones.
// Unlike a sync.RWMutex it lets a call re-enter (Range's fn may call the
// store) while Close waits.
type lifecycle struct {
	mu       sync.Mutex
	idle     sync.Cond
	closed   bool
	inflight int
}

// enter registers a call; it fails with ErrClosed once shut has begun.
func (l *lifecycle) enter() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.inflight++
	return nil
}

func (l *lifecycle) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if l.inflight == 0 && l.closed {
		l.idle.Broadcast()
	}
}

// shut refuses new calls and waits until those in progress have left.
func (l *lifecycle) shut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.idle.L == nil {
		l.idle.L = &l.mu
	}
	for l.inflight > 0 {
		l.idle.Wait()
	}
}
