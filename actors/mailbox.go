package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// mailbox is protoactor's unbounded default mailbox (actor/mailbox.go, the
// same order: system messages first, suspension, Throughput messages
// before yielding, failures escalated) with one difference: the function
// it hands its dispatcher is made once. The default evaluates the method
// value m.processMessages at each idle → busy transition, one allocation
// per schedule, several per proposal on a node.
type mailbox struct {
	mu     sync.Mutex
	user   fifo
	system fifo

	status    atomic.Int32 // mailboxIdle or mailboxRunning
	userN     atomic.Int32
	sysN      atomic.Int32
	suspended atomic.Bool

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	process    func() // m.processMessages, made once
}

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

// newMailbox is an actor.MailboxProducer.
func newMailbox() actor.Mailbox {
	m := &mailbox{}
	m.process = m.processMessages
	return m
}

func (m *mailbox) PostUserMessage(message any) {
	// Batches as protoactor posts them: each message, then the batch.
	if batch, ok := message.(actor.MessageBatch); ok {
		for _, msg := range batch.GetMessages() {
			m.PostUserMessage(msg)
		}
	}
	if env, ok := message.(*actor.MessageEnvelope); ok {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, msg := range batch.GetMessages() {
				m.PostUserMessage(msg)
			}
		}
	}
	m.mu.Lock()
	m.user.push(message)
	m.mu.Unlock()
	m.userN.Add(1)
	m.schedule()
}

func (m *mailbox) PostSystemMessage(message any) {
	m.mu.Lock()
	m.system.push(message)
	m.mu.Unlock()
	m.sysN.Add(1)
	m.schedule()
}

func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
}

func (m *mailbox) Start() {}

func (m *mailbox) UserMessageCount() int { return int(m.userN.Load()) }

func (m *mailbox) schedule() {
	if m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
		m.dispatcher.Schedule(m.process)
	}
}

func (m *mailbox) processMessages() {
	for {
		m.run()
		m.status.Store(mailboxIdle)
		// Messages posted after run found the queues empty.
		if m.sysN.Load() > 0 || (!m.suspended.Load() && m.userN.Load() > 0) {
			if m.status.CompareAndSwap(mailboxIdle, mailboxRunning) {
				continue
			}
		}
		return
	}
}

func (m *mailbox) pop(q *fifo) (any, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return q.pop()
}

func (m *mailbox) run() {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
		}
	}()
	i, t := 0, m.dispatcher.Throughput()
	for {
		if i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		var ok bool
		if msg, ok = m.pop(&m.system); ok {
			m.sysN.Add(-1)
			switch msg.(type) {
			case *actor.SuspendMailbox:
				m.suspended.Store(true)
			case *actor.ResumeMailbox:
				m.suspended.Store(false)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if m.suspended.Load() {
			return
		}
		if msg, ok = m.pop(&m.user); !ok {
			return
		}
		m.userN.Add(-1)
		m.invoker.InvokeUserMessage(msg)
	}
}

// fifo is a growable ring of messages.
type fifo struct {
	buf        []any
	head, size int
}

func (q *fifo) push(v any) {
	if q.size == len(q.buf) {
		grown := make([]any, max(16, 2*len(q.buf)))
		for i := range q.size {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = v
	q.size++
}

func (q *fifo) pop() (any, bool) {
	if q.size == 0 {
		return nil, false
	}
	v := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	if q.size == 0 && len(q.buf) > 1024 {
		q.buf, q.head = nil, 0 // a burst's buffer is not kept
	}
	return v, true
}
