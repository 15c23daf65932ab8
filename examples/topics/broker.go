package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
)

// requestTimeout bounds every request a broker or client makes of a node.
const requestTimeout = 2 * time.Second

// retryDelay spaces out the rebalancer's retries after a failed round.
const retryDelay = 50 * time.Millisecond

// Publish asks a broker to append Payload to Topic. Answer:
// *PublishResponse.
type Publish struct {
	Topic   string
	Payload string
}

// PublishResponse answers Publish. Err is nil, a *NotOwnerError, or the
// error of the ownership check.
type PublishResponse struct {
	Owner  uint64 // the broker that appended
	Offset int    // the payload's position in that broker's log of Topic
	Err    error
}

// NotOwnerError: the broker does not own Topic; Owner does (0: nobody yet).
type NotOwnerError struct {
	Topic string
	Owner uint64
}

func (e *NotOwnerError) Error() string {
	return fmt.Sprintf("topics: not the owner of %q (owner: %s)", e.Topic, ownerName(e.Owner))
}

// Events a broker reports to its observer (the scenario), besides what it
// prints. They are facts the broker has seen, sent from its actor.
type (
	// balancedSeen: the leader's rebalancer found nothing to move.
	balancedSeen struct {
		Leader uint64
		Voters []uint64
		Table  []Assignment
	}
	// configSeen: a configuration entry committed on Node.
	configSeen struct {
		Node   uint64
		Config *messages.ClusterConfig
	}
	// leaderSeen: Node learned that Leader leads in Term.
	leaderSeen struct{ Node, Leader, Term uint64 }
	// stoppedSeen: Node's Raft node stopped.
	stoppedSeen struct {
		Node   uint64
		Reason string
		Err    error
	}
)

// retryRebalance is the message a broker sends itself to retry a round.
type retryRebalance struct{ why string }

// brokerConfig configures a broker.
type brokerConfig struct {
	// Node configures the broker's Raft node; the broker adds itself to
	// Node.Subscribers and Node.StateMachine must be Table.
	Node  actors.Config
	Table *Table
	// Say prints one line of the narrative, prefixed with the node.
	Say func(format string, args ...any)
	// Observe receives the events above; it must not block.
	Observe func(ev any)
}

// broker is the application actor of one server: the parent of its Raft
// node, the rebalancer while its node leads, and the owner of the topic
// logs it is assigned.
type broker struct {
	cfg  brokerConfig
	id   uint64
	node *actor.PID

	member  string   // "voter", "learner" or "" in the last configuration seen
	owned   []string // topics owned, as last printed
	leading bool     // this node is the leader (last LeaderChanged)
	// Invariant: at most one rebalancing round is in flight; again asks
	// for one more when it ends.
	rebalancing, again bool

	logs map[string][]string // the topic logs this broker has served
}

func newBroker(cfg brokerConfig) *broker {
	b := &broker{cfg: cfg, id: cfg.Node.ID, logs: map[string][]string{}}
	for _, m := range cfg.Node.Bootstrap.GetVoters() {
		if m.Id == b.id {
			b.member = "voter"
		}
	}
	return b
}

func (b *broker) say(format string, args ...any) { b.cfg.Say(format, args...) }

func (b *broker) observe(ev any) {
	if b.cfg.Observe != nil {
		b.cfg.Observe(ev)
	}
}

// Receive handles the broker's messages: its own, its node's events, and
// requests for its node, which it forwards.
func (b *broker) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		// The pattern: the node is this actor's child, and this actor
		// hears its events from the start.
		cfg := b.cfg.Node
		cfg.Subscribers = append(slices.Clip(cfg.Subscribers), ctx.Self())
		props, err := actors.Props(cfg)
		if err != nil {
			b.say("cannot start its Raft node: %v", err)
			b.observe(stoppedSeen{Node: b.id, Reason: "invalid configuration", Err: err})
			ctx.Stop(ctx.Self())
			return
		}
		b.node = ctx.Spawn(props)

	case *actors.Propose, *actors.Read, *actors.ChangeConfig, *actors.TransferLeadership, *actors.GetStatus, *actors.Stop:
		if b.node == nil {
			refuse(ctx) // the node failed to start or has stopped
			return
		}
		ctx.Forward(b.node) // the node answers the original sender

	case *actors.EntryApplied:
		if msg.Entry.Type != messages.EntryType_ENTRY_NORMAL {
			return
		}
		b.reportOwned()
		if b.leading && msg.Result == nil {
			var c Command
			if json.Unmarshal(msg.Entry.Data, &c) == nil && (c.Op == OpCreate || c.Op == OpDrop) {
				b.rebalance(ctx, fmt.Sprintf("topic %s: %s", c.Topic, c.Op))
			}
		}

	case *actors.MembershipChanged:
		b.observe(configSeen{Node: b.id, Config: msg.Config})
		member := ""
		if slices.Contains(memberIDs(msg.Config.GetVoters()), b.id) {
			member = "voter"
		} else if slices.Contains(memberIDs(msg.Config.GetLearners()), b.id) {
			member = "learner"
		}
		if member != b.member {
			if member == "" {
				b.say("is no longer a member (configuration at index %d)", msg.Index)
			} else {
				b.say("is now a %s (configuration at index %d)", member, msg.Index)
			}
			b.member = member
		}
		if b.leading {
			b.rebalance(ctx, fmt.Sprintf("membership changed: voters %v", memberIDs(msg.Config.GetVoters())))
		}

	case *actors.LeaderChanged:
		b.observe(leaderSeen{Node: b.id, Leader: msg.Leader, Term: msg.Term})
		was := b.leading
		b.leading = msg.Leader == b.id
		if b.leading && !was {
			b.say("became the leader (term %d)", msg.Term)
			b.rebalance(ctx, "new leader")
		}

	case *retryRebalance:
		b.rebalance(ctx, msg.why)

	case *actors.NodeStopped:
		if msg.Err != nil {
			b.say("Raft node stopped: %s: %v", msg.Reason, msg.Err)
		} else {
			b.say("Raft node stopped: %s", msg.Reason)
		}
		b.leading = false
		b.observe(stoppedSeen{Node: b.id, Reason: msg.Reason, Err: msg.Err})

	case *actor.Terminated:
		if msg.Who.Equal(b.node) {
			b.node = nil
		}

	case *Publish:
		b.publish(ctx, msg)
	}
}

// reportOwned prints what this node owns when that changed.
func (b *broker) reportOwned() {
	owned := b.cfg.Table.Owned(b.id)
	if slices.Equal(owned, b.owned) {
		return
	}
	b.owned = owned
	if len(owned) == 0 {
		b.say("now owns no topics")
		return
	}
	b.say("now owns topics: %s", strings.Join(owned, ", "))
}

// rebalance runs one round of the rebalancer, unless one is in flight (it
// then asks for another round after it). A round reads the configuration
// (GetStatus) and the table (a linearizable Read), plans, and proposes the
// moves as one entry; each step is a future continued on this actor with
// ReenterAfter, so the broker keeps handling events meanwhile.
func (b *broker) rebalance(ctx actor.Context, why string) {
	if !b.leading || b.node == nil {
		return
	}
	if b.rebalancing {
		b.again = true
		return
	}
	b.rebalancing, b.again = true, false
	ctx.ReenterAfter(ctx.RequestFuture(b.node, &actors.GetStatus{}, requestTimeout), func(res any, err error) {
		st, ok := res.(*actors.Status)
		if err != nil || !ok || st.Role != raft.Leader {
			b.roundDone(ctx, why, nil) // not the leader any more: nothing to do
			return
		}
		voters := memberIDs(st.Config.GetVoters())
		ctx.ReenterAfter(ctx.RequestFuture(b.node, &actors.Read{Query: TableQuery{}}, requestTimeout), func(res any, err error) {
			table, err := readResult[[]Assignment](res, err)
			if err != nil {
				b.roundDone(ctx, why, fmt.Errorf("read the table: %w", err))
				return
			}
			moves := Plan(table, voters)
			if len(moves) == 0 {
				b.observe(balancedSeen{Leader: b.id, Voters: voters, Table: table})
				b.roundDone(ctx, why, nil)
				return
			}
			b.say("rebalancer (%s), voters %v: move %s", why, voters, joinMoves(moves))
			p := &actors.Propose{Data: Command{Op: OpAssign, Moves: moves}.Encode()}
			ctx.ReenterAfter(ctx.RequestFuture(b.node, p, requestTimeout), func(res any, err error) {
				err = proposeResult(res, err)
				if errors.Is(err, ErrStaleMove) {
					b.say("rebalancer: plan overtaken (%v); planning again", err)
					err = nil
				}
				// Success or overtaken: one more round checks the result
				// (and reports the cluster balanced).
				b.again = b.again || err == nil
				b.roundDone(ctx, why, err)
			})
		})
	})
}

// roundDone ends a round: after a failure it retries later, after a
// request for another round it starts it.
func (b *broker) roundDone(ctx actor.Context, why string, err error) {
	b.rebalancing = false
	switch {
	case err != nil && b.leading:
		b.say("rebalancer: %v; retrying in %v", err, retryDelay)
		scheduler.NewTimerScheduler(ctx).SendOnce(retryDelay, ctx.Self(), &retryRebalance{why: why})
	case b.again:
		b.rebalance(ctx, "check")
	}
}

// publish appends to a topic log this broker owns. Ownership is confirmed
// with a linearizable Read first: a broker whose assignment was moved away
// (or that was removed from the cluster) refuses, even if it has not yet
// applied the move itself.
func (b *broker) publish(ctx actor.Context, msg *Publish) {
	if b.node == nil {
		ctx.Respond(&PublishResponse{Err: actors.ErrStopped})
		return
	}
	ctx.ReenterAfter(ctx.RequestFuture(b.node, &actors.Read{Query: OwnerQuery{Topic: msg.Topic}}, requestTimeout), func(res any, err error) {
		a, err := readResult[Assignment](res, err)
		switch {
		case err != nil:
			ctx.Respond(&PublishResponse{Err: fmt.Errorf("topics: confirm ownership of %q: %w", msg.Topic, err)})
		case a.Owner != b.id:
			ctx.Respond(&PublishResponse{Err: &NotOwnerError{Topic: msg.Topic, Owner: a.Owner}})
		default:
			b.logs[msg.Topic] = append(b.logs[msg.Topic], msg.Payload)
			ctx.Respond(&PublishResponse{Owner: b.id, Offset: len(b.logs[msg.Topic]) - 1})
		}
	})
}

// refuse answers a request for the node with ErrStopped, as the node itself
// would once stopped, so that the sender does not wait for its timeout.
func refuse(ctx actor.Context) {
	if ctx.Sender() == nil {
		return
	}
	switch ctx.Message().(type) {
	case *actors.Propose:
		ctx.Respond(&actors.ProposeResponse{Err: actors.ErrStopped})
	case *actors.Read:
		ctx.Respond(&actors.ReadResponse{Err: actors.ErrStopped})
	case *actors.ChangeConfig:
		ctx.Respond(&actors.ChangeConfigResponse{Err: actors.ErrStopped})
	case *actors.TransferLeadership:
		ctx.Respond(&actors.TransferLeadershipResponse{Err: actors.ErrStopped})
	case *actors.Stop:
		ctx.Respond(&actors.Stopped{})
	}
	// GetStatus has no error answer: the sender's wait expires.
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

// proposeResult unwraps the answer to a Propose: the transport error, the
// node's error, or the error the table answered.
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

func joinMoves(moves []Move) string {
	s := make([]string, len(moves))
	for i, m := range moves {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}
