package transport

import (
	"sync"
	"sync/atomic"

	"github.com/flotilla-raft/flotilla/messages"
)

// Lifecycle is the Start/Close bookkeeping every transport needs, so that
// implementations get the contract's edge cases right in one place:
// Start once, Send refused after Close, and no Handler call that starts
// after Close returns. Embed it or keep one per transport; the zero value
// is ready.
type Lifecycle struct {
	closed atomic.Bool
	// mu: Deliver holds it shared while calling the handler, Close holds
	// it exclusively, so Close waits for running handler calls.
	mu      sync.RWMutex
	handler Handler
	started bool
}

// Start records h. It returns ErrNilHandler, ErrClosed or
// ErrAlreadyStarted when the transport cannot start.
func (l *Lifecycle) Start(h Handler) error {
	if h == nil {
		return ErrNilHandler
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed.Load():
		return ErrClosed
	case l.started:
		return ErrAlreadyStarted
	}
	l.handler, l.started = h, true
	return nil
}

// Deliver hands m to the handler if the transport is started and not
// closed, and reports whether it did. Safe for concurrent use.
func (l *Lifecycle) Deliver(m *messages.Message) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if !l.started || l.closed.Load() {
		return false
	}
	l.handler(m)
	return true
}

// Closed reports whether Close was called; cheap enough for every Send.
func (l *Lifecycle) Closed() bool { return l.closed.Load() }

// Close marks the transport closed and waits for running Deliver calls.
// It reports whether this call was the first, so the caller releases its
// resources once.
func (l *Lifecycle) Close() (first bool) {
	first = l.closed.CompareAndSwap(false, true)
	l.mu.Lock()
	l.handler = nil
	l.mu.Unlock()
	return first
}
