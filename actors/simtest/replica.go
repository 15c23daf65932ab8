package simtest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
)

// The replicated state: a key → list of values store. A command is
// "key=value" and appends value to key's list; its result is the list's new
// length. A read's query is a key; its result is the key's list.

func encodeCommand(key, value string) []byte { return []byte(key + "=" + value) }

func decodeCommand(b []byte) (key, value string) {
	k, v, _ := strings.Cut(string(b), "=")
	return k, v
}

// replica is the applied state of one node incarnation, shared by the two
// ways of applying (the StateMachine interface and the application actor).
// Every apply and restore is reported to the recorder.
//
// Invariant: chain is the hash of the sequence of commands applied, in
// index order, up to last; replicas that applied the same commands have the
// same chain at the same index.
type replica struct {
	rec  *recorder
	node uint64
	inc  int
	log  *incarnationLog

	mu    sync.Mutex
	kv    map[string][]string
	last  uint64 // index of the last command applied (or restored)
	chain uint64
}

func newReplica(rec *recorder, node uint64, inc int) *replica {
	r := &replica{rec: rec, node: node, inc: inc, kv: map[string][]string{}}
	r.log = rec.newIncarnation(node, inc)
	return r
}

func chainHash(prev, index uint64, data []byte) uint64 {
	h := fnv.New64a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], prev)
	binary.BigEndian.PutUint64(b[8:], index)
	h.Write(b[:])
	h.Write(data)
	return h.Sum64()
}

func (r *replica) apply(e *messages.Entry) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Index <= r.last {
		r.rec.violation("node %d (incarnation %d) applied index %d after index %d: applied twice or out of order", r.node, r.inc, e.Index, r.last)
	}
	key, value := decodeCommand(e.Data)
	r.kv[key] = append(r.kv[key], value)
	r.chain = chainHash(r.chain, e.Index, e.Data)
	r.last = e.Index
	r.rec.applied(r.log, e.Index, r.chain)
	return len(r.kv[key])
}

func (r *replica) query(q any) (any, error) {
	key, ok := q.(string)
	if !ok {
		return nil, fmt.Errorf("simtest: query %T, want a key", q)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.kv[key]), nil
}

type replicaSnapshot struct {
	Last  uint64
	Chain uint64
	KV    map[string][]string
}

func (r *replica) snapshot() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return json.Marshal(replicaSnapshot{Last: r.last, Chain: r.chain, KV: r.kv})
}

func (r *replica) restore(data []byte) error {
	var s replicaSnapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("simtest: restore: %w", err)
	}
	if s.KV == nil {
		s.KV = map[string][]string{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kv, r.last, r.chain = s.KV, s.Last, s.Chain
	r.rec.restored(r.log, s.Last, s.Chain)
	return nil
}

// state returns the last applied index, the chain and a copy of the store.
func (r *replica) state() (uint64, uint64, map[string][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kv := make(map[string][]string, len(r.kv))
	for k, v := range r.kv {
		kv[k] = slices.Clone(v)
	}
	return r.last, r.chain, kv
}

// kvMachine applies through the StateMachine interface.
type kvMachine struct{ r *replica }

func (m *kvMachine) Apply(e *messages.Entry) any { return m.r.apply(e) }
func (m *kvMachine) Query(q any) (any, error)    { return m.r.query(q) }
func (m *kvMachine) Snapshot() ([]byte, error)   { return m.r.snapshot() }
func (m *kvMachine) Restore(data []byte) error   { return m.r.restore(data) }

// The actor way: an application actor holds the state; the node's applier
// asks it through actors.ActorStateMachine. Snapshots, restores and queries
// are asked of the same actor, so they are ordered with the applies.
type (
	snapshotAsk struct{}
	restoreAsk  struct{ data []byte }
	queryAsk    struct{ q any }
	askAnswer   struct {
		v   any
		err error
	}
)

// appActor is the application actor. When slow, it sometimes takes its
// time (fake time) before answering an entry; rarely longer than the
// applier waits.
type appActor struct {
	r       *replica
	rng     *rand.Rand
	slow    bool
	timeout time.Duration // the applier's wait
	stats   *Stats
	statsMu *sync.Mutex
	healed  *atomic.Bool // no more slowness once the faults healed
}

func (a *appActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actors.ApplyRequest:
		if a.slow && !a.healed.Load() {
			switch p := a.rng.Float64(); {
			case p < 0.01:
				a.count(func(s *Stats) { s.SlowBeyondWait++ })
				time.Sleep(a.timeout + 50*time.Millisecond)
			case p < 0.1:
				time.Sleep(time.Duration(10+a.rng.IntN(100)) * time.Millisecond)
			}
		}
		ctx.Respond(&actors.ApplyResult{Result: a.r.apply(m.Entry)})
	case *snapshotAsk:
		b, err := a.r.snapshot()
		ctx.Respond(&askAnswer{v: b, err: err})
	case *restoreAsk:
		ctx.Respond(&askAnswer{err: a.r.restore(m.data)})
	case *queryAsk:
		v, err := a.r.query(m.q)
		ctx.Respond(&askAnswer{v: v, err: err})
	}
}

func (a *appActor) count(f func(*Stats)) {
	a.statsMu.Lock()
	defer a.statsMu.Unlock()
	f(a.stats)
}

// actorMachine is actors.ActorStateMachine plus the optional interfaces,
// each answered by the application actor.
type actorMachine struct {
	*actors.ActorStateMachine
	r *replica
}

func (m *actorMachine) ask(msg any) (any, error) {
	res, err := m.Sender.RequestFuture(m.PID, msg, 10*time.Second).Result()
	if err != nil {
		return nil, err
	}
	a := res.(*askAnswer)
	return a.v, a.err
}

func (m *actorMachine) Query(q any) (any, error) { return m.ask(&queryAsk{q: q}) }

func (m *actorMachine) Snapshot() ([]byte, error) {
	v, err := m.ask(&snapshotAsk{})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

func (m *actorMachine) Restore(data []byte) error {
	_, err := m.ask(&restoreAsk{data: data})
	return err
}

// recorder collects every replica's applies and restores, across nodes and
// incarnations, and checks them: the same chain at the same index on every
// replica; within an incarnation, indexes strictly increasing; at the end
// (gaps), no command index skipped.
type recorder struct {
	mu         sync.Mutex
	chainAt    map[uint64]uint64 // command index → chain after applying it
	incs       []*incarnationLog
	violations []string
}

// incarnationLog is what one node incarnation applied: restores and applies
// in order.
type incarnationLog struct {
	node   uint64
	inc    int
	events []applyEvent
}

type applyEvent struct {
	restore bool // a snapshot restore up to index
	index   uint64
}

func newRecorder() *recorder { return &recorder{chainAt: map[uint64]uint64{}} }

func (rc *recorder) violation(format string, args ...any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.violations = append(rc.violations, fmt.Sprintf(format, args...))
}

func (rc *recorder) newIncarnation(node uint64, inc int) *incarnationLog {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l := &incarnationLog{node: node, inc: inc}
	rc.incs = append(rc.incs, l)
	return l
}

func (rc *recorder) applied(l *incarnationLog, index, chain uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l.events = append(l.events, applyEvent{index: index})
	rc.checkChain(l, index, chain, "applied")
}

func (rc *recorder) restored(l *incarnationLog, index, chain uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	l.events = append(l.events, applyEvent{restore: true, index: index})
	if index > 0 {
		rc.checkChain(l, index, chain, "restored a snapshot")
	}
}

// checkChain: caller holds mu.
func (rc *recorder) checkChain(l *incarnationLog, index, chain uint64, what string) {
	if c, ok := rc.chainAt[index]; !ok {
		rc.chainAt[index] = chain
	} else if c != chain {
		rc.violations = append(rc.violations, fmt.Sprintf(
			"node %d (incarnation %d) %s at index %d with a state that differs from another replica's at that index", l.node, l.inc, what, index))
	}
}

// checkGaps reports every command index an incarnation skipped: one applied
// by some replica, between two consecutive applies (or a restore and an
// apply) of that incarnation.
func (rc *recorder) checkGaps() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	all := make([]uint64, 0, len(rc.chainAt))
	for i := range rc.chainAt {
		all = append(all, i)
	}
	slices.Sort(all)
	var out []string
	for _, l := range rc.incs {
		cur := uint64(0)
		for _, ev := range l.events {
			if !ev.restore {
				// The first command index after cur must be ev.index.
				k := sort.Search(len(all), func(i int) bool { return all[i] > cur })
				if k < len(all) && all[k] < ev.index {
					out = append(out, fmt.Sprintf("node %d (incarnation %d) skipped command index %d (applied %d after %d)", l.node, l.inc, all[k], ev.index, cur))
					break
				}
			}
			cur = ev.index
		}
	}
	return out
}
