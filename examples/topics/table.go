package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/flotilla-raft/flotilla/messages"
)

// Command ops.
const (
	OpCreate = "create" // create Topic, unassigned
	OpAssign = "assign" // apply Moves, all or none
	OpDrop   = "drop"   // delete Topic
)

// Command is one entry of the replicated log, JSON-encoded.
type Command struct {
	Op    string `json:"op"`
	Topic string `json:"topic,omitempty"`
	Moves []Move `json:"moves,omitempty"`
}

// Move reassigns Topic from From (its current owner, 0 for unassigned: a
// compare-and-set condition) to To.
type Move struct {
	Topic string `json:"topic"`
	From  uint64 `json:"from"`
	To    uint64 `json:"to"`
}

func (m Move) String() string { return fmt.Sprintf("%s %s→%d", m.Topic, ownerName(m.From), m.To) }

func ownerName(id uint64) string {
	if id == 0 {
		return "unassigned"
	}
	return fmt.Sprint(id)
}

// Encode returns the command's log entry data.
func (c Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("topics: marshal %+v: %v", c, err)) // plain structs always marshal
	}
	return b
}

// Assignment is one row of the table.
type Assignment struct {
	Topic string `json:"topic"`
	Owner uint64 `json:"owner"` // 0: unassigned
	// Epoch is the log index of the entry that last set Owner (or created
	// the topic): it only grows, so it orders the assignments a client
	// has seen of one topic, and could fence a stale owner's writes in
	// storage shared by the owners.
	Epoch uint64 `json:"epoch"`
}

// Errors results of commands and queries. A refused command is a result,
// answered to its proposer; it changes nothing.
var (
	ErrTopicExists  = errors.New("topics: topic already exists")
	ErrNoTopic      = errors.New("topics: no such topic")
	ErrStaleMove    = errors.New("topics: move refused, the owner changed")
	ErrBadCommand   = errors.New("topics: undecodable command")
	ErrUnknownQuery = errors.New("topics: unknown query")
)

// Table is the replicated state machine: topic → owner. It implements
// actors.StateMachine, actors.Querier and actors.Snapshotter. The node's
// applier calls Apply, Query, Snapshot and Restore, one at a time; the
// broker reads it concurrently (Owned, Get), hence the lock.
type Table struct {
	mu     sync.RWMutex
	topics map[string]Assignment
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{topics: map[string]Assignment{}} }

// Apply applies one committed command and returns nil or the error that
// refused it.
func (t *Table) Apply(e *messages.Entry) any {
	var c Command
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return fmt.Errorf("%w at index %d: %v", ErrBadCommand, e.Index, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch c.Op {
	case OpCreate:
		if _, ok := t.topics[c.Topic]; ok {
			return fmt.Errorf("%w: %q", ErrTopicExists, c.Topic)
		}
		t.topics[c.Topic] = Assignment{Topic: c.Topic, Epoch: e.Index}
	case OpDrop:
		if _, ok := t.topics[c.Topic]; !ok {
			return fmt.Errorf("%w: %q", ErrNoTopic, c.Topic)
		}
		delete(t.topics, c.Topic)
	case OpAssign:
		for _, m := range c.Moves {
			a, ok := t.topics[m.Topic]
			if !ok {
				return fmt.Errorf("%w: %q", ErrNoTopic, m.Topic)
			}
			if a.Owner != m.From {
				return fmt.Errorf("%w: %s is owned by %s, not %s", ErrStaleMove, m.Topic, ownerName(a.Owner), ownerName(m.From))
			}
		}
		for _, m := range c.Moves {
			t.topics[m.Topic] = Assignment{Topic: m.Topic, Owner: m.To, Epoch: e.Index}
		}
	default:
		return fmt.Errorf("%w at index %d: op %q", ErrBadCommand, e.Index, c.Op)
	}
	return nil
}

// Queries served by Query (through actors.Read, so linearizable).
type (
	// OwnerQuery asks for the Assignment of Topic.
	OwnerQuery struct{ Topic string }
	// TableQuery asks for every Assignment, by topic.
	TableQuery struct{}
)

// Query implements actors.Querier.
func (t *Table) Query(q any) (any, error) {
	switch q := q.(type) {
	case OwnerQuery:
		a, ok := t.Get(q.Topic)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoTopic, q.Topic)
		}
		return a, nil
	case TableQuery:
		return t.All(), nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownQuery, q)
}

// Get returns the assignment of topic as this node has applied it.
func (t *Table) Get(topic string) (Assignment, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	a, ok := t.topics[topic]
	return a, ok
}

// All returns every assignment, sorted by topic.
func (t *Table) All() []Assignment {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.SortedFunc(maps.Values(t.topics), func(a, b Assignment) int { return strings.Compare(a.Topic, b.Topic) })
}

// Owned returns the topics owned by id, sorted.
func (t *Table) Owned(id uint64) []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	for name, a := range t.topics {
		if a.Owner == id {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Snapshot implements actors.Snapshotter.
func (t *Table) Snapshot() ([]byte, error) { return json.Marshal(t.All()) }

// Restore implements actors.Snapshotter.
func (t *Table) Restore(data []byte) error {
	var all []Assignment
	if err := json.Unmarshal(data, &all); err != nil {
		return fmt.Errorf("topics: restore snapshot: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.topics)
	for _, a := range all {
		t.topics[a.Topic] = a
	}
	return nil
}

// Plan returns the fewest moves that leave every server in servers owning
// ⌊T/N⌋ or ⌈T/N⌉ of the T topics: unassigned topics and those owned by a
// server not in servers are given out first, then servers above their share
// hand their surplus to those below. It is deterministic (topics by name,
// servers by id) and nil when the table is already balanced or servers is
// empty.
func Plan(table []Assignment, servers []uint64) []Move {
	if len(servers) == 0 {
		return nil
	}
	servers = slices.Sorted(slices.Values(servers))
	owned := map[uint64][]string{}
	var pool []Move // topics to give out, To unset
	for _, a := range slices.SortedFunc(slices.Values(table), func(a, b Assignment) int { return strings.Compare(a.Topic, b.Topic) }) {
		if slices.Contains(servers, a.Owner) {
			owned[a.Owner] = append(owned[a.Owner], a.Topic)
		} else {
			pool = append(pool, Move{Topic: a.Topic, From: a.Owner})
		}
	}
	// Shares: ⌊T/N⌋ each, one more for the `extra` servers that own the
	// most now (fewest moves), ties by id.
	base, extra := len(table)/len(servers), len(table)%len(servers)
	byLoad := slices.SortedStableFunc(slices.Values(servers), func(a, b uint64) int {
		return cmp.Compare(len(owned[b]), len(owned[a]))
	})
	share := map[uint64]int{}
	for i, id := range byLoad {
		share[id] = base
		if i < extra {
			share[id]++
		}
	}
	for _, id := range servers {
		if n := len(owned[id]); n > share[id] {
			for _, topic := range owned[id][share[id]:] {
				pool = append(pool, Move{Topic: topic, From: id})
			}
			owned[id] = owned[id][:share[id]]
		}
	}
	var moves []Move
	for _, id := range servers {
		for len(owned[id]) < share[id] && len(pool) > 0 {
			m := pool[0]
			pool = pool[1:]
			m.To = id
			owned[id] = append(owned[id], m.Topic)
			moves = append(moves, m)
		}
	}
	slices.SortFunc(moves, func(a, b Move) int { return strings.Compare(a.Topic, b.Topic) })
	return moves
}

// Balanced reports whether every topic is owned by one of servers and the
// servers' counts differ by at most one.
func Balanced(table []Assignment, servers []uint64) bool {
	count := map[uint64]int{}
	for _, id := range servers {
		count[id] = 0
	}
	for _, a := range table {
		if _, ok := count[a.Owner]; !ok {
			return false
		}
		count[a.Owner]++
	}
	if len(count) == 0 {
		return len(table) == 0
	}
	lo, hi := len(table), 0
	for _, n := range count {
		lo, hi = min(lo, n), max(hi, n)
	}
	return hi-lo <= 1
}
