package actors

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// The shared persister of a Host: every group's node has its own persister
// child (group commit within the group), whose Save on a hostStore becomes
// a request to this one actor; it drains every request in its mailbox into
// one pebblestore.DB.SaveGroups: one batch, one fsync for all the groups
// that had writes pending.

// hostStore is a group's store on a host: the group of the host's
// database, whose Save goes through the shared persister. Everything else
// (reads, snapshots, compaction, the application's applied index) is the
// group's own.
type hostStore struct {
	*pebblestore.Group
	root      *actor.RootContext
	persister *actor.PID
	stopped   <-chan struct{} // closed when the shared persister stops
	stats     *groupStats
}

// groupStats are one group's writes through the shared persister.
type groupStats struct {
	saves, entries atomic.Uint64
	lastSave       atomic.Int64 // unix nanoseconds; 0: none
}

// activeAt reports whether the group wrote to the store within window
// before now.
func (st *groupStats) activeAt(now time.Time, window time.Duration) bool {
	ns := st.lastSave.Load()
	return ns != 0 && now.Sub(time.Unix(0, ns)) <= window
}

// hostStats are the shared persister's rounds.
type hostStats struct {
	fsyncs, updates, entries atomic.Uint64
	maxUpdates               atomic.Int64
}

// groupSave is one group's Update for the shared persister; done receives
// the outcome.
type groupSave struct {
	store *hostStore
	u     persistence.Update
	done  chan error
}

// Save implements persistence.LogStore: u joins the shared persister's
// next batch; Save returns once that batch is synced (or refused).
func (s *hostStore) Save(ctx context.Context, u persistence.Update) error {
	if u.Empty() {
		return s.Group.Save(ctx, u)
	}
	req := &groupSave{store: s, u: u, done: make(chan error, 1)}
	s.root.Send(s.persister, req)
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		select {
		case err := <-req.done:
			return err
		default:
			return fmt.Errorf("actors: group %d: save: %w", s.ID(), ErrHostStopped)
		}
	}
}

// sharedPersister is the host's one writer of log appends.
type sharedPersister struct {
	db      *pebblestore.DB
	stats   *hostStats
	metrics *hostMetrics
	stopped chan struct{}
	buf     []*groupSave
	queued  bool
	round   []pebblestore.GroupUpdate
	reqs    []*groupSave
}

func (p *sharedPersister) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *groupSave:
		p.buf = append(p.buf, msg)
		if !p.queued {
			p.queued = true
			ctx.Send(ctx.Self(), &persistFlush{})
		}
	case *persistFlush:
		p.queued = false
		for len(p.buf) > 0 {
			p.flush()
		}
	case *actor.Stopping:
		for _, r := range p.buf {
			r.done <- fmt.Errorf("actors: group %d: save: %w", r.store.ID(), ErrHostStopped)
		}
		p.buf = nil
		close(p.stopped)
	}
}

// flush writes one round: the first pending update of each group (a
// group's later ones, if any, wait for the next round, in order) in one
// SaveGroups, and answers them.
func (p *sharedPersister) flush() {
	p.round, p.reqs = p.round[:0], p.reqs[:0]
	rest := p.buf[:0]
	in := make(map[*hostStore]bool, len(p.buf))
	entries := 0
	for _, r := range p.buf {
		if in[r.store] {
			rest = append(rest, r)
			continue
		}
		in[r.store] = true
		p.round = append(p.round, pebblestore.GroupUpdate{Group: r.store.Group, Update: r.u})
		p.reqs = append(p.reqs, r)
		entries += len(r.u.Entries)
	}
	clear(p.buf[len(rest):])
	p.buf = rest
	start := time.Now()
	errs := p.db.SaveGroups(context.Background(), p.round)
	end := time.Now()
	now := end.UnixNano()
	synced := false
	for i, r := range p.reqs {
		if errs[i] == nil {
			synced = true
			r.store.stats.saves.Add(1)
			r.store.stats.entries.Add(uint64(len(r.u.Entries)))
			r.store.stats.lastSave.Store(now)
		}
		r.done <- errs[i]
	}
	st := p.stats
	if !synced {
		clear(p.round)
		clear(p.reqs)
		return
	}
	st.fsyncs.Add(1)
	p.metrics.synced(len(p.round), entries, end.Sub(start))
	st.updates.Add(uint64(len(p.round)))
	st.entries.Add(uint64(entries))
	if n := int64(len(p.round)); n > st.maxUpdates.Load() {
		st.maxUpdates.Store(n)
	}
	clear(p.round)
	clear(p.reqs)
}
