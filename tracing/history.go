package tracing

import (
	"fmt"
	"sync"
	"time"
)

// Transition is one step in a node's election and role history: what the
// node actor records for each event of the core, and for its own pause,
// resume and stop (actors.Transition is this type).
type Transition struct {
	Time time.Time // when the node actor recorded it (wall clock of the actor shell)
	Term uint64    // the term after the transition
	// Kind is the core's event kind (raft.EventKind's String: role-changed,
	// term-changed, leader-changed, config-changed, transfer-aborted, ...),
	// or paused, resumed, stopping for the node's own steps.
	Kind     string
	From, To string // roles before and after (role-changed only)
	Leader   uint64 // the known leader after the transition; 0 when none
	Peer     uint64 // the peer the event concerns (a vote, a transfer), 0 when none
	Reason   string // free text: why (the message, the peer, the timeout)
}

// String formats t on one line, for logs and test failures.
func (t Transition) String() string {
	s := fmt.Sprintf("%s t%d %s %s->%s leader=%d", t.Time.UTC().Format(time.RFC3339Nano), t.Term, t.Kind, t.From, t.To, t.Leader)
	if t.Peer != 0 {
		s += fmt.Sprintf(" peer=%d", t.Peer)
	}
	if t.Reason != "" {
		s += " (" + t.Reason + ")"
	}
	return s
}

// DefaultHistoryCapacity is the capacity of a History made with a capacity <= 0.
const DefaultHistoryCapacity = 256

// History is a bounded ring of the most recent Transitions: once full, each Add
// overwrites the oldest. The node actor adds to it and answers GetHistory with
// Snapshot (Config.HistorySize is its capacity). A mutex (uncontended: one actor) makes Snapshot safe from other
// goroutines too, such as a debug endpoint.
//
// The zero value is not usable: use NewHistory.
type History struct {
	mu    sync.Mutex
	ring  []Transition // Invariant: len(ring) == capacity once allocated
	next  int          // Invariant: 0 <= next < len(ring); the slot of the next Add
	total uint64       // Transitions ever added; min(total, len(ring)) are kept
}

// NewHistory returns an empty History that keeps the last capacity transitions
// (DefaultHistoryCapacity when capacity <= 0).
func NewHistory(capacity int) *History {
	if capacity <= 0 {
		capacity = DefaultHistoryCapacity
	}
	return &History{ring: make([]Transition, capacity)}
}

// Add records tr, dropping the oldest transition when the ring is full.
func (h *History) Add(tr Transition) {
	h.mu.Lock()
	h.ring[h.next] = tr
	h.next = (h.next + 1) % len(h.ring)
	h.total++
	h.mu.Unlock()
}

// Snapshot returns the kept transitions, oldest first, in a new slice the caller
// owns.
func (h *History) Snapshot() []Transition {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.lenLocked()
	out := make([]Transition, 0, n)
	if n == len(h.ring) { // full: the oldest is at next
		out = append(out, h.ring[h.next:]...)
		return append(out, h.ring[:h.next]...)
	}
	return append(out, h.ring[:n]...)
}

// Len is the number of transitions kept (at most the capacity).
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lenLocked()
}

func (h *History) lenLocked() int {
	if h.total >= uint64(len(h.ring)) {
		return len(h.ring)
	}
	return int(h.total)
}
