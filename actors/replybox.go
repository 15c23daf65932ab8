package actors

import (
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/asynkron/protoactor-go/actor"
)

// replyBox is a reusable reply address for ProposeAndWait: a process in the
// actor system's registry that hands the one answer of a proposal to the
// waiting caller. protoactor's RequestFuture registers a new process per
// request (a registry insert under a string key), arms a time.AfterFunc and
// builds a condition variable: about a tenth of the CPU of a proposal at one
// client and a fifth at 512. A box is registered once and kept in its
// system's pool between calls; one whose wait expired is removed from the
// registry and dropped, so a late answer goes to dead letters as a future's
// would.
//
// Each request is sent with its own copy of the box's PID carrying a new
// RequestId, and the box takes only an answer addressed to the request
// waiting now: should the node ever answer a proposal twice, or late, the
// extra answer is dropped instead of reaching the next caller of the box
// (a wrong result to the wrong client).
type replyBox struct {
	pid   *actor.PID // the registered address; requests use copies (to)
	seq   uint32     // RequestId of the last request; the caller's alone
	ch    chan any   // cap 1: the answer
	timer *time.Timer

	mu   sync.Mutex
	want uint32 // RequestId of the request waiting; 0: none
}

func (b *replyBox) SendUserMessage(to *actor.PID, message any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if to == nil || to.RequestId != b.want || b.want == 0 {
		return // an answer to an earlier request, or to none
	}
	select {
	case b.ch <- actor.UnwrapEnvelopeMessage(message):
	default: // one answer per proposal: a second one is dropped
	}
}

// expect makes the box take answers to request id only (0: none) and
// drops an answer left in it.
func (b *replyBox) expect(id uint32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want = id
	select {
	case <-b.ch:
	default:
	}
}

func (b *replyBox) SendSystemMessage(*actor.PID, any) {}

func (b *replyBox) Stop(*actor.PID) {}

// replyBoxes are an actor system's idle boxes (at most maxIdleBoxes).
type replyBoxes struct {
	mu   sync.Mutex
	idle []*replyBox
}

const maxIdleBoxes = 1024

// boxPools maps each actor system (weakly: the pool does not keep it alive)
// to its boxes; an entry is deleted when its system is collected.
var boxPools sync.Map // weak.Pointer[actor.ActorSystem] -> *replyBoxes

func poolOf(sys *actor.ActorSystem) *replyBoxes {
	key := weak.Make(sys)
	if p, ok := boxPools.Load(key); ok {
		return p.(*replyBoxes)
	}
	p, loaded := boxPools.LoadOrStore(key, &replyBoxes{})
	if !loaded {
		runtime.AddCleanup(sys, func(k weak.Pointer[actor.ActorSystem]) { boxPools.Delete(k) }, key)
	}
	return p.(*replyBoxes)
}

// get returns an idle box of sys, or registers a new one.
func (p *replyBoxes) get(sys *actor.ActorSystem) *replyBox {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		b := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	b := &replyBox{ch: make(chan any, 1)}
	b.pid, _ = sys.ProcessRegistry.Add(b, "reply"+sys.ProcessRegistry.NextId())
	return b
}

// put keeps b for a later call (it has had its one answer), or removes it
// from the registry when enough boxes idle.
func (p *replyBoxes) put(sys *actor.ActorSystem, b *replyBox) {
	p.mu.Lock()
	if len(p.idle) < maxIdleBoxes {
		p.idle = append(p.idle, b)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	sys.ProcessRegistry.Remove(b.pid)
}

// boxRequester is a Requester that can send with a reply address of ours:
// the root context and actor contexts.
type boxRequester interface {
	ActorSystem() *actor.ActorSystem
	RequestWithCustomSender(pid *actor.PID, message any, sender *actor.PID)
}

// requestWithBox sends msg to node with a reply box as sender and waits up
// to timeout for the one answer. ok is false when ctx cannot (the caller
// then uses RequestFuture). The error is a future's: actor.ErrTimeout or
// actor.ErrDeadLetter.
func requestWithBox(ctx Requester, node *actor.PID, msg any, timeout time.Duration) (res any, ok bool, err error) {
	rc, ok := ctx.(boxRequester)
	if !ok || timeout <= 0 {
		return nil, false, nil
	}
	sys := rc.ActorSystem()
	pool := poolOf(sys)
	b := pool.get(sys)
	if b.timer == nil {
		b.timer = time.NewTimer(timeout)
	} else {
		b.timer.Reset(timeout)
	}
	b.seq++
	if b.seq == 0 { // wrapped: 0 is "none"
		b.seq = 1
	}
	b.expect(b.seq)
	to := &actor.PID{Address: b.pid.Address, Id: b.pid.Id, RequestId: b.seq}
	rc.RequestWithCustomSender(node, msg, to)
	select {
	case res = <-b.ch:
		b.timer.Stop()
		b.expect(0)
		pool.put(sys, b)
		if _, dead := res.(*actor.DeadLetterResponse); dead {
			return nil, true, actor.ErrDeadLetter
		}
		return res, true, nil
	case <-b.timer.C:
		// The answer may still come: this box is not reused.
		sys.ProcessRegistry.Remove(b.pid)
		return nil, true, actor.ErrTimeout
	}
}
