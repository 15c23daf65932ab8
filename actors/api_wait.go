package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Requester is what can make requests: an actor.Context or the root context.
type Requester interface {
	RequestFuture(pid *actor.PID, message interface{}, timeout time.Duration) *actor.Future
}

// ProposeAndWait proposes data and waits up to timeout. An expired wait is
// ErrOutcomeUnknown, never a failure: the proposal may still commit. A node
// actor that is gone (stopped, or failed to start) answers ErrStopped.
// Otherwise the error is the answer's Err (see ProposeResponse for the
// list), returned with the answer.
func ProposeAndWait(ctx Requester, node *actor.PID, p *Propose, timeout time.Duration) (*ProposeResponse, error) {
	var res any
	var err error
	boxed := false
	if !p.ReplyOnAppend { // one answer only: a reusable reply box (replybox.go)
		res, boxed, err = requestWithBox(ctx, node, p, timeout)
	}
	if !boxed {
		res, err = ctx.RequestFuture(node, p, timeout).Result()
	}
	if err != nil {
		return nil, waitErr(ctx, node, "propose", err)
	}
	r, ok := res.(*ProposeResponse)
	if !ok {
		return nil, fmt.Errorf("actors: propose: unexpected answer %T", res)
	}
	return r, r.Err
}

// Request sends msg and waits up to timeout for an answer of type T. The
// error is the wait's (ErrOutcomeUnknown when it expired, ErrStopped when
// the node actor is gone) or, when the
// answer carries one, the answer's own Err: callers check one error.
func Request[T any](ctx Requester, node *actor.PID, msg any, timeout time.Duration) (T, error) {
	var zero T
	res, err := ctx.RequestFuture(node, msg, timeout).Result()
	if err != nil {
		return zero, waitErr(ctx, node, fmt.Sprintf("%T", msg), err)
	}
	t, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("actors: %T: unexpected answer %T", msg, res)
	}
	if r, ok := res.(interface{ answerErr() error }); ok {
		return t, r.answerErr()
	}
	return t, nil
}

// waitErr maps the error of a request's future: a dead letter (the node
// actor is gone: stopped, or failed to start) is ErrStopped, and so is an
// expired wait on a local node actor that is gone by then (protoactor drops
// the messages still in the mailbox of an actor that finishes stopping);
// any other expired wait is ErrOutcomeUnknown.
func waitErr(ctx Requester, node *actor.PID, what string, err error) error {
	switch {
	case errors.Is(err, actor.ErrDeadLetter):
		return fmt.Errorf("actors: %s: %w (the node actor is gone: %w)", what, ErrStopped, err)
	case errors.Is(err, actor.ErrTimeout) && gone(ctx, node):
		return fmt.Errorf("actors: %s: %w (the node actor is gone)", what, ErrStopped)
	case errors.Is(err, actor.ErrTimeout):
		return fmt.Errorf("actors: %s: %w", what, ErrOutcomeUnknown)
	}
	return fmt.Errorf("actors: %s: %w", what, err)
}

// gone reports whether node is a local actor of ctx's actor system that no
// longer exists (false when that cannot be told).
func gone(ctx Requester, node *actor.PID) bool {
	s, ok := ctx.(interface{ ActorSystem() *actor.ActorSystem })
	if !ok || node == nil {
		return false
	}
	sys := s.ActorSystem()
	if node.Address != sys.Address() {
		return false
	}
	_, alive := sys.ProcessRegistry.GetLocal(node.Id)
	return !alive
}

func (r *ProposeResponse) answerErr() error { return r.Err }

func (r *ReadResponse) answerErr() error { return r.Err }

func (r *ChangeConfigResponse) answerErr() error { return r.Err }

func (r *MembershipResponse) answerErr() error { return r.Err }

func (r *TransferLeadershipResponse) answerErr() error { return r.Err }

func (r *TakeSnapshotResponse) answerErr() error { return r.Err }

func (r *CompactToResponse) answerErr() error { return r.Err }

func (r *SetLogLevelResponse) answerErr() error { return r.Err }
