package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
)

// requestTimeout bounds every request the broker makes of its node.
const requestTimeout = 2 * time.Second

// checkEvery is how often the leader's broker looks at liveness and the
// table while it leads.
const checkEvery = 100 * time.Millisecond

// check is the message the leading broker sends itself every checkEvery.
type check struct{ gen uint64 }

// brokerActor is the application actor of one broker: the parent of its
// Raft node, and the rebalancer while its node leads. Requests for Raft
// sent to it are forwarded to the node, which answers the sender.
//
// Which events drive which decisions:
//   - LeaderChanged to this node: it starts checking (check messages);
//     to another: it stops.
//   - MembershipChanged (a broker added or removed) and EntryApplied of a
//     create: a check now, on the leader.
//   - check: GetStatus tells which voters the leader heard from recently
//     (Progress.RecentActive, kept by CheckQuorum); a voter unheard for
//     --grace is dead. A linearizable Read of the table, Plan, and one
//     Propose of the moves (compare-and-set on each partition's epoch).
//   - EntryApplied of anything, on every broker: the handover loop looks
//     for partitions this broker now owns (server.handovers).
//   - MemberRemoved: this broker refuses every request from then on.
type brokerActor struct {
	s       *server
	ncfg    actors.Config
	started chan<- error
	node    *actor.PID

	leading  bool
	gen      uint64 // check generation: a timer of an older one is ignored
	busy     bool   // a check round is in flight
	lastSeen map[uint64]time.Time
	dead     map[uint64]bool
}

func newBrokerActor(s *server, ncfg actors.Config, started chan<- error) *brokerActor {
	return &brokerActor{s: s, ncfg: ncfg, started: started, lastSeen: map[uint64]time.Time{}, dead: map[uint64]bool{}}
}

func (b *brokerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		cfg := b.ncfg
		cfg.Subscribers = []*actor.PID{ctx.Self()}
		props, err := actors.Props(cfg)
		if err != nil {
			b.started <- err
			return
		}
		b.node = ctx.Spawn(props)
		b.started <- nil

	case *actors.Propose, *actors.Read, *actors.AddMember, *actors.RemoveMember, *actors.GetStatus, *actors.Stop:
		if b.node == nil {
			ctx.Respond(fmt.Errorf("topics: %w", actors.ErrStopped))
			return
		}
		ctx.Forward(b.node)

	case *actors.EntryApplied:
		b.s.notifyChanged()
		if msg.Entry.Type == messages.EntryType_ENTRY_NORMAL && b.leading {
			b.check(ctx)
		}

	case *actors.MembershipChanged:
		b.s.log.Info("membership changed", "index", msg.Index, "voters", memberIDs(msg.Config.GetVoters()),
			"learners", memberIDs(msg.Config.GetLearners()))
		b.s.notifyChanged()
		if b.leading {
			b.check(ctx)
		}

	case *actors.MemberRemoved:
		// This broker is no member any more: it refuses every request at
		// once (its table will not change again), until the operator
		// stops it.
		b.s.removed.Store(true)
		b.s.log.Warn("removed from the cluster: refusing requests; stop this broker", "index", msg.Index, "reason", msg.Reason)

	case *actors.LeaderChanged:
		was := b.leading
		b.leading = msg.Leader == b.s.cfg.id
		if b.leading && !was {
			b.s.log.Info("leading: the rebalancer runs here", "term", msg.Term)
			b.gen++
			clear(b.lastSeen)
			clear(b.dead)
			b.check(ctx)
			b.arm(ctx)
		}

	case *check:
		if msg.gen != b.gen || !b.leading {
			return
		}
		b.check(ctx)
		b.arm(ctx)

	case *actors.NodeStopped:
		b.leading = false
		if msg.Err != nil {
			select {
			case b.s.failed <- fmt.Errorf("%s: %w", msg.Reason, msg.Err):
			default:
			}
		}

	case *actor.Terminated:
		if msg.Who.Equal(b.node) {
			b.node = nil
			select {
			case b.s.failed <- errors.New("the Raft node actor terminated"):
			default:
			}
		}
	}
}

func (b *brokerActor) arm(ctx actor.Context) {
	scheduler.NewTimerScheduler(ctx).SendOnce(checkEvery, ctx.Self(), &check{gen: b.gen})
}

// check runs one round of the rebalancer unless one is in flight. Each
// step is a future continued on this actor with ReenterAfter, so the actor
// keeps handling events meanwhile.
func (b *brokerActor) check(ctx actor.Context) {
	if b.busy || b.node == nil {
		return
	}
	b.busy = true
	ctx.ReenterAfter(ctx.RequestFuture(b.node, &actors.GetStatus{}, requestTimeout), func(res any, err error) {
		st, ok := res.(*actors.Status)
		if err != nil || !ok || st.Role != actors.Leader {
			b.busy = false
			return
		}
		live := b.liveness(st)
		ctx.ReenterAfter(ctx.RequestFuture(b.node, &actors.Read{Query: TableQuery{}}, requestTimeout), func(res any, err error) {
			view, err := readResult[*View](res, err)
			if err != nil {
				b.busy = false
				return
			}
			cmd := b.decide(view, st, live)
			if cmd == nil {
				b.busy = false
				return
			}
			ctx.ReenterAfter(ctx.RequestFuture(b.node, &actors.Propose{Data: cmd.Encode()}, requestTimeout), func(res any, err error) {
				b.busy = false
				err = proposeResult(res, err)
				switch {
				case err != nil:
					b.s.log.Info("rebalancer: proposal refused; deciding again", "op", cmd.Op, "err", err)
				case cmd.Op == OpAssign:
					b.s.rebalances.Add(1)
				}
			})
		})
	})
}

// liveness updates when each voter was last heard from and returns the
// live voters: the leader, and every voter heard within --grace.
func (b *brokerActor) liveness(st *actors.Status) []uint64 {
	now := time.Now()
	voters := memberIDs(st.Config.GetVoters())
	active := map[uint64]bool{b.s.cfg.id: true}
	for _, p := range st.Progress {
		if p.RecentActive {
			active[p.ID] = true
		}
	}
	var live []uint64
	for _, id := range voters {
		seen, ok := b.lastSeen[id]
		if active[id] || !ok {
			b.lastSeen[id], seen = now, now // a new voter gets a grace period too
		}
		dead := now.Sub(seen) > b.s.cfg.grace
		if dead != b.dead[id] {
			b.dead[id] = dead
			if dead {
				b.s.log.Warn("broker unheard for the grace period: its partitions move", "peer", id, "grace", b.s.cfg.grace)
			} else {
				b.s.log.Info("broker heard again", "peer", id)
			}
		}
		if !dead {
			live = append(live, id)
		}
	}
	return live
}

// decide returns the one command the leader proposes now, or nil: first a
// founder's API address missing from the table (from --peers), then the
// moves of Plan.
func (b *brokerActor) decide(v *View, st *actors.Status, live []uint64) *Command {
	if _, ok := v.Brokers[b.s.cfg.id]; !ok {
		return &Command{Op: OpRegister, Broker: b.s.cfg.id, API: b.s.cfg.api}
	}
	for id, p := range b.s.cfg.peers {
		if _, ok := v.Brokers[id]; !ok {
			return &Command{Op: OpRegister, Broker: id, API: p.api}
		}
	}
	// Only brokers whose API is known can serve partitions.
	live = slices.DeleteFunc(slices.Clone(live), func(id uint64) bool { return v.Brokers[id] == "" })
	moves := Plan(v.Partitions, live)
	if len(moves) == 0 {
		return nil
	}
	b.s.log.Info("rebalancer: moving partitions", "live", live, "moves", fmt.Sprint(moves))
	return &Command{Op: OpAssign, Moves: moves, Why: fmt.Sprintf("live %v", live)}
}

// readResult unwraps the answer to a Read whose result is a T.
func readResult[T any](res any, err error) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	r, ok := res.(*actors.ReadResponse)
	if !ok {
		return zero, fmt.Errorf("topics: unexpected answer %T to a read", res)
	}
	if r.Err != nil {
		return zero, r.Err
	}
	t, ok := r.Result.(T)
	if !ok {
		return zero, fmt.Errorf("topics: read answered %T, want %T", r.Result, zero)
	}
	return t, nil
}

// proposeResult unwraps the answer to a Propose: the wait's error, the
// node's, or the error the table answered.
func proposeResult(res any, err error) error {
	if err != nil {
		return err
	}
	r, ok := res.(*actors.ProposeResponse)
	if !ok {
		return fmt.Errorf("topics: unexpected answer %T to a proposal", res)
	}
	if r.Err != nil {
		return r.Err
	}
	if e, ok := r.Result.(error); ok {
		return e
	}
	return nil
}

func memberIDs(ms []*messages.Member) []uint64 {
	ids := make([]uint64, 0, len(ms))
	for _, m := range ms {
		ids = append(ids, m.Id)
	}
	slices.Sort(ids)
	return ids
}
