package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/flotilla-raft/flotilla/messages"
)

// Command ops: the only writes that go through Raft. Messages never do.
const (
	OpCreate   = "create"   // create Topic with Partitions partitions, unassigned
	OpAssign   = "assign"   // apply Moves, all or none (compare-and-set on each epoch)
	OpReady    = "ready"    // the owner of Partition finished its handover at Epoch
	OpRegister = "register" // Broker's client API is at API
)

// Command is one entry of the replicated log, JSON-encoded.
type Command struct {
	Op         string   `json:"op"`
	Topic      string   `json:"topic,omitempty"`
	Partitions int      `json:"partitions,omitempty"`
	Moves      []Move   `json:"moves,omitempty"`
	Partition  string   `json:"partition,omitempty"`
	Epoch      uint64   `json:"epoch,omitempty"`
	Holders    []uint64 `json:"holders,omitempty"`
	Broker     uint64   `json:"broker,omitempty"`
	API        string   `json:"api,omitempty"`
	Why        string   `json:"why,omitempty"` // for the logs: what decided an assign
}

// Move gives Partition to Owner, with Follower as its replica (0: none),
// if its epoch is still Epoch (a compare-and-set condition).
type Move struct {
	Partition string `json:"partition"`
	Epoch     uint64 `json:"epoch"`
	Owner     uint64 `json:"owner"`
	Follower  uint64 `json:"follower"`
}

func (m Move) String() string {
	return fmt.Sprintf("%s→%s/%s", m.Partition, brokerName(m.Owner), brokerName(m.Follower))
}

func brokerName(id uint64) string {
	if id == 0 {
		return "-"
	}
	return strconv.FormatUint(id, 10)
}

// Encode returns the command's log entry data.
func (c Command) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("topics: marshal %+v: %v", c, err)) // plain structs always marshal
	}
	return b
}

// Partition is one row of the assignment table.
type Partition struct {
	Name  string `json:"name"` // topic/index
	Topic string `json:"topic"`
	Owner uint64 `json:"owner"` // 0: unassigned
	// Follower holds a replica: the owner acknowledges a write only once
	// the follower has stored it too. 0: none (a one-broker cluster).
	Follower uint64 `json:"follower"`
	// Epoch is the log index of the entry that last set Owner or
	// Follower. It only grows. Every message a broker accepts carries the
	// epoch it was accepted in, and a broker sealed at an epoch refuses
	// writes and replication of any older one (fencing).
	Epoch uint64 `json:"epoch"`
	// Ready: the owner finished its handover at Epoch (it holds every
	// acknowledged message and so does its follower) and accepts writes.
	Ready bool `json:"ready"`
	// Holders are the brokers whose copy was complete at the last Ready
	// (the owner and follower of that epoch). A new owner copies the
	// partition from one of them; none means nothing was ever written.
	Holders []uint64 `json:"holders,omitempty"`
}

// View is what TableQuery answers: every partition, sorted by topic and
// index, and every broker's client API.
type View struct {
	Partitions []Partition       `json:"partitions"`
	Brokers    map[uint64]string `json:"brokers"`
	Applied    uint64            `json:"applied"` // the index of the last entry applied
	// Leader and Voters are filled in by GET /v1/table from the node's
	// status (not part of the replicated state).
	Leader uint64   `json:"leader,omitempty"`
	Voters []uint64 `json:"voters,omitempty"`
	byName map[string]Partition
}

// Get returns the named partition.
func (v *View) Get(name string) (Partition, bool) {
	if v.byName == nil {
		v.byName = map[string]Partition{}
		for _, p := range v.Partitions {
			v.byName[p.Name] = p
		}
	}
	p, ok := v.byName[name]
	return p, ok
}

// Errors answered by the table. A refused command is a result, answered to
// its proposer; it changes nothing.
var (
	ErrTopicExists  = errors.New("topics: topic already exists")
	ErrNoTopic      = errors.New("topics: no such topic")
	ErrNoPartition  = errors.New("topics: no such partition")
	ErrStaleEpoch   = errors.New("topics: stale epoch")
	ErrBadCommand   = errors.New("topics: invalid command")
	ErrUnknownQuery = errors.New("topics: unknown query")
)

// MaxPartitions bounds the partitions of one topic.
const MaxPartitions = 64

// Table is the replicated state machine: partition → owner, follower and
// epoch, and broker → client API. It implements actors.StateMachine,
// actors.Querier and actors.Snapshotter. The node's applier calls Apply,
// Query, Snapshot and Restore, one at a time; the broker's HTTP handlers
// read it concurrently (View), hence the lock.
type Table struct {
	mu      sync.RWMutex
	parts   map[string]Partition
	brokers map[uint64]string
	applied uint64
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{parts: map[string]Partition{}, brokers: map[uint64]string{}} }

// PartitionName is the name of partition i of topic.
func PartitionName(topic string, i int) string { return fmt.Sprintf("%s/%d", topic, i) }

// validTopic checks a topic name: 1 to 64 letters, digits, '-', '_' or '.'.
func validTopic(t string) error {
	if t == "" || len(t) > 64 {
		return fmt.Errorf("%w: topic name %q: want 1 to 64 characters", ErrBadCommand, t)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: topic name %q: only letters, digits, '-', '_' and '.'", ErrBadCommand, t)
		}
	}
	return nil
}

// Apply applies one committed command and returns nil or the error that
// refused it.
func (t *Table) Apply(e *messages.Entry) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.applied = e.Index
	var c Command
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return fmt.Errorf("%w at index %d: %v", ErrBadCommand, e.Index, err)
	}
	switch c.Op {
	case OpCreate:
		if err := validTopic(c.Topic); err != nil {
			return err
		}
		if c.Partitions < 1 || c.Partitions > MaxPartitions {
			return fmt.Errorf("%w: %d partitions, want 1 to %d", ErrBadCommand, c.Partitions, MaxPartitions)
		}
		if _, ok := t.parts[PartitionName(c.Topic, 0)]; ok {
			return fmt.Errorf("%w: %q", ErrTopicExists, c.Topic)
		}
		for i := range c.Partitions {
			n := PartitionName(c.Topic, i)
			t.parts[n] = Partition{Name: n, Topic: c.Topic, Epoch: e.Index}
		}
	case OpAssign:
		for _, m := range c.Moves {
			p, ok := t.parts[m.Partition]
			if !ok {
				return fmt.Errorf("%w: %q", ErrNoPartition, m.Partition)
			}
			if p.Epoch != m.Epoch {
				return fmt.Errorf("%w: %s is at epoch %d, not %d", ErrStaleEpoch, m.Partition, p.Epoch, m.Epoch)
			}
			if m.Owner == 0 || m.Owner == m.Follower {
				return fmt.Errorf("%w: move %v", ErrBadCommand, m)
			}
		}
		for _, m := range c.Moves {
			p := t.parts[m.Partition]
			p.Owner, p.Follower, p.Epoch, p.Ready = m.Owner, m.Follower, e.Index, false
			t.parts[m.Partition] = p
		}
	case OpReady:
		p, ok := t.parts[c.Partition]
		if !ok {
			return fmt.Errorf("%w: %q", ErrNoPartition, c.Partition)
		}
		if p.Epoch != c.Epoch {
			return fmt.Errorf("%w: %s is at epoch %d, not %d", ErrStaleEpoch, c.Partition, p.Epoch, c.Epoch)
		}
		p.Ready, p.Holders = true, slices.Clone(c.Holders)
		t.parts[c.Partition] = p
	case OpRegister:
		if c.Broker == 0 || c.API == "" {
			return fmt.Errorf("%w: register %d at %q", ErrBadCommand, c.Broker, c.API)
		}
		t.brokers[c.Broker] = c.API
	default:
		return fmt.Errorf("%w at index %d: op %q", ErrBadCommand, e.Index, c.Op)
	}
	return nil
}

// Queries served by Query (through actors.Read, so linearizable).
type (
	// PartitionQuery asks for the Partition named Name.
	PartitionQuery struct{ Name string }
	// TableQuery asks for the whole View.
	TableQuery struct{}
)

// Query implements actors.Querier.
func (t *Table) Query(q any) (any, error) {
	switch q := q.(type) {
	case PartitionQuery:
		t.mu.RLock()
		defer t.mu.RUnlock()
		p, ok := t.parts[q.Name]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoPartition, q.Name)
		}
		return p, nil
	case TableQuery:
		return t.View(), nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnknownQuery, q)
}

// View returns the table as this node has applied it.
func (t *Table) View() *View {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v := &View{Brokers: maps.Clone(t.brokers), Applied: t.applied}
	for _, p := range t.parts {
		p.Holders = slices.Clone(p.Holders)
		v.Partitions = append(v.Partitions, p)
	}
	slices.SortFunc(v.Partitions, comparePartitions)
	return v
}

func comparePartitions(a, b Partition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(partIndex(a.Name), partIndex(b.Name))
}

func partIndex(name string) int {
	_, s, _ := strings.Cut(name, "/")
	i, _ := strconv.Atoi(s)
	return i
}

// snapshot is the table's snapshot encoding.
type snapshot struct {
	Partitions []Partition       `json:"partitions"`
	Brokers    map[uint64]string `json:"brokers"`
}

// Snapshot implements actors.Snapshotter.
func (t *Table) Snapshot() ([]byte, error) {
	v := t.View()
	return json.Marshal(snapshot{Partitions: v.Partitions, Brokers: v.Brokers})
}

// Restore implements actors.Snapshotter.
func (t *Table) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("topics: restore snapshot: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.parts)
	clear(t.brokers)
	for _, p := range s.Partitions {
		t.parts[p.Name] = p
	}
	maps.Copy(t.brokers, s.Brokers)
	return nil
}

// Plan decides the moves that the leader proposes, from the table, the
// voters and which of them are live (heard from within the grace period):
//
//   - a partition whose owner is not a live voter goes to a live holder
//     (its follower first: it has every acknowledged message), or to any
//     live voter if it has no holders (nothing was written yet); a
//     partition whose holders are all gone stays where it is (unavailable:
//     giving it to a broker without its data would lose messages);
//   - a follower that is not a live voter is replaced;
//   - then, for balance, while the busiest live voter owns two more ready
//     partitions than the idlest, one of its partitions moves to the
//     idlest, with the old owner as follower (it holds the data).
//
// Every changed partition appears once; the result is sorted and nil when
// nothing changes. It is deterministic.
func Plan(parts []Partition, live []uint64) []Move {
	if len(live) == 0 {
		return nil
	}
	live = slices.Sorted(slices.Values(live))
	isLive := func(id uint64) bool { return slices.Contains(live, id) }
	owned := map[uint64]int{}
	followed := map[uint64]int{}
	cur := map[string]Partition{}
	for _, p := range parts {
		cur[p.Name] = p
	}
	names := slices.Sorted(maps.Keys(cur))
	for _, n := range names {
		p := cur[n]
		if isLive(p.Owner) {
			owned[p.Owner]++
		}
		if isLive(p.Follower) {
			followed[p.Follower]++
		}
	}
	// pick returns the live broker, not in except, with the least of
	// first, then of second, then the lowest id.
	pick := func(first, second map[uint64]int, except ...uint64) uint64 {
		var best uint64
		for _, id := range live {
			if slices.Contains(except, id) {
				continue
			}
			if best == 0 || first[id] < first[best] || first[id] == first[best] && second[id] < second[best] {
				best = id
			}
		}
		return best
	}
	moves := map[string]Move{}
	for _, n := range names {
		p := cur[n]
		m := Move{Partition: n, Epoch: p.Epoch, Owner: p.Owner, Follower: p.Follower}
		if !isLive(p.Owner) {
			var to uint64
			switch {
			case len(p.Holders) == 0:
				to = pick(owned, followed)
			case isLive(p.Follower) && slices.Contains(p.Holders, p.Follower):
				to = p.Follower
			default:
				for _, h := range p.Holders {
					if isLive(h) {
						to = h
						break
					}
				}
			}
			if to == 0 {
				continue // every copy is gone: wait for one to come back
			}
			if m.Follower == to {
				m.Follower = 0
				followed[to]--
			}
			m.Owner = to
			owned[to]++
		}
		if m.Follower == 0 || !isLive(m.Follower) {
			m.Follower = pick(followed, owned, m.Owner)
			followed[m.Follower]++
		}
		if m.Owner != p.Owner || m.Follower != p.Follower {
			moves[n] = m
		}
	}
	// Balance ready partitions that nothing above moved.
	for range len(names) {
		busiest, idlest := live[0], live[0]
		for _, id := range live {
			if owned[id] > owned[busiest] {
				busiest = id
			}
			if owned[id] < owned[idlest] {
				idlest = id
			}
		}
		if owned[busiest]-owned[idlest] < 2 {
			break
		}
		moved := false
		for _, n := range names {
			p := cur[n]
			if _, done := moves[n]; done || p.Owner != busiest || !p.Ready {
				continue
			}
			moves[n] = Move{Partition: n, Epoch: p.Epoch, Owner: idlest, Follower: busiest}
			owned[busiest]--
			owned[idlest]++
			moved = true
			break
		}
		if !moved {
			break
		}
	}
	if len(moves) == 0 {
		return nil
	}
	return slices.SortedFunc(maps.Values(moves), func(a, b Move) int { return strings.Compare(a.Partition, b.Partition) })
}
