package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// workerPool is the dispatcher of a node and its children (persister,
// applier, replicators). protoactor's default dispatcher starts a new
// goroutine each time an idle mailbox receives a message; on the hot path
// that is several goroutines per proposal, each starting on a small stack
// that the node's handlers then grow by copying (runtime.newstack /
// copystack took ~45% of the CPU of a 3-node cluster at one client). The
// pool keeps a few goroutines whose stacks stay grown: a mailbox with work
// is handed to an idle worker, or to a new one while fewer than max run.
//
// It starts no goroutine before the first message; its workers exit once
// it has had no work for workerIdle (reap), and once the node stops (close);
// after that it falls back to a goroutine per run, as protoactor does, so
// nothing it starts outlives the node, until a node starts again from the
// same Props (open).
type workerPool struct {
	idle chan func() // unbuffered: idle workers wait on it
	used atomic.Bool // a run was scheduled since reap last looked

	mu      sync.Mutex
	quit    chan struct{} // closed by close or reap: idle workers exit
	closed  bool
	reaping bool // a reap is due
	workers int
	max     int
}

// props are the Props of an actor of the node (the node itself, its
// persister, applier and replicators): run by p, in a mailbox that does
// not allocate per schedule (see mailbox).
func (p *workerPool) props(producer actor.Producer) *actor.Props {
	return actor.PropsFromProducer(producer, actor.WithDispatcher(p), actor.WithMailbox(newMailbox))
}

// workerIdle is how long the pool stays without work before its workers
// exit (one to two such periods): a node left running (not stopped, as a
// test may leave it) keeps no goroutine once idle.
const workerIdle = time.Second

// poolWorkers bounds a node's workers: the node, the persister, the
// applier and a replicator per peer can be busy at once.
const poolWorkers = 8

func newWorkerPool() *workerPool {
	return &workerPool{idle: make(chan func()), quit: make(chan struct{}), max: poolWorkers}
}

// Schedule implements mailbox.Dispatcher.
func (p *workerPool) Schedule(fn func()) {
	if !p.used.Load() {
		p.used.Store(true)
	}
	select {
	case p.idle <- fn: // an idle worker takes it
		return
	default:
	}
	p.mu.Lock()
	if p.closed || p.workers >= p.max {
		p.mu.Unlock()
		go fn()
		return
	}
	p.workers++
	quit := p.quit
	if !p.reaping {
		p.reaping = true
		time.AfterFunc(workerIdle, p.reap)
	}
	p.mu.Unlock()
	go p.work(fn, quit)
}

// reap runs every workerIdle while the pool has workers: when nothing was
// scheduled since the last look, the idle workers exit (a timer in the
// workers' own wait would cost every run a timer reset and a costlier
// select).
func (p *workerPool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed || p.workers == 0:
		p.reaping = false
	case p.used.Swap(false):
		time.AfterFunc(workerIdle, p.reap)
	default:
		close(p.quit)
		p.quit = make(chan struct{})
		p.reaping = false
	}
}

// Throughput implements mailbox.Dispatcher: messages a mailbox processes
// before it yields (protoactor's default).
func (p *workerPool) Throughput() int { return 300 }

func (p *workerPool) work(fn func(), quit chan struct{}) {
	for {
		fn()
		select {
		case fn = <-p.idle:
		case <-quit:
			p.mu.Lock()
			p.workers--
			p.mu.Unlock()
			return
		}
	}
}

// open undoes close, for a node that starts again from the same Props.
func (p *workerPool) open() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.closed = false
		p.quit = make(chan struct{})
	}
}

// close makes the idle workers exit and every later run start a goroutine
// of its own. A worker busy now exits when its run ends.
func (p *workerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.quit)
	}
}
