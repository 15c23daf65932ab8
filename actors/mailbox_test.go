package actors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// recorder is a MessageInvoker that records what a mailbox hands it. A
// user message "panic" panics (the mailbox escalates it, as the actor
// context would: the escalation suspends the mailbox); a message "post:X"
// posts X to the mailbox from inside the handler.
type recorder struct {
	mb  actor.Mailbox
	log []string
}

func (r *recorder) InvokeSystemMessage(m any) { r.log = append(r.log, fmt.Sprintf("sys %v", m)) }

func (r *recorder) InvokeUserMessage(m any) {
	s, _ := m.(string)
	r.log = append(r.log, "user "+s)
	switch {
	case s == "panic":
		panic("handler failed")
	case len(s) > 5 && s[:5] == "post:":
		r.mb.PostUserMessage(s[5:])
	}
}

func (r *recorder) EscalateFailure(reason, m any) {
	r.log = append(r.log, fmt.Sprintf("escalate %v on %v", reason, m))
	r.mb.PostSystemMessage(&actor.SuspendMailbox{}) // as actorContext.EscalateFailure
}

// The node's mailbox hands an actor the same messages in the same order as
// protoactor's default mailbox for the same posts: system messages first,
// nothing of the user's while suspended, a panic escalated with its
// message, messages posted from inside a handler, batches. Runs on
// protoactor's synchronized dispatcher (each run inline), so the two
// traces are comparable step by step; random sequences of posts.
func TestMailboxMatchesProtoactorDefault(t *testing.T) {
	post := func(mb actor.Mailbox, op string) {
		switch op {
		case "suspend":
			mb.PostSystemMessage(&actor.SuspendMailbox{})
		case "resume":
			mb.PostSystemMessage(&actor.ResumeMailbox{})
		case "restart":
			mb.PostSystemMessage(&actor.Restart{})
		case "batch":
			mb.PostUserMessage(&actor.MessageEnvelope{Message: testBatch{"b1", "b2"}})
		default:
			mb.PostUserMessage(op)
		}
	}
	ops := []string{"suspend", "resume", "restart", "batch", "panic", "post:inner", "a", "b", "c"}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		seq := make([]string, 5+rng.IntN(30))
		for i := range seq {
			seq[i] = ops[rng.IntN(len(ops))]
		}
		run := func(mb actor.Mailbox, throughput int) []string {
			r := &recorder{mb: mb}
			mb.RegisterHandlers(r, actor.NewSynchronizedDispatcher(throughput))
			mb.Start()
			for _, op := range seq {
				post(mb, op)
			}
			post(mb, "resume") // whatever is left is handed over
			return r.log
		}
		for _, throughput := range []int{1, 300} {
			want := run(actor.Unbounded()(), throughput)
			got := run(newMailbox(), throughput)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d, throughput %d, posts %v:\nnode mailbox %q\nprotoactor   %q", seed, throughput, seq, got, want)
			}
		}
	}
}

type testBatch []any

func (b testBatch) GetMessages() []any { return b }

// No message is lost when it is posted as the mailbox goes idle (a lost
// wake-up would leave it in the queue with nobody scheduled), and each
// sender's messages arrive in its order, with several senders on the
// node's pool. Each sender waits for its message to be handled before it
// posts the next (as a request waits for its answer), so that posts keep
// racing the mailbox's return to idle and a message left behind is not
// rescued by a later one. System messages posted meanwhile are all handed
// over too.
func TestMailboxNoLostWakeUp(t *testing.T) {
	const senders, each = 4, 5000
	p := newWorkerPool()
	defer p.close()
	mb := newMailbox()
	var (
		mu      sync.Mutex
		next    [senders]int
		bad     string
		users   int
		sys     int
		handled [senders]chan struct{}
	)
	for s := range handled {
		handled[s] = make(chan struct{}, 1)
	}
	inv := &funcInvoker{
		user: func(m any) {
			v := m.([2]int)
			mu.Lock()
			if v[1] != next[v[0]] && bad == "" {
				bad = fmt.Sprintf("sender %d: message %d arrived when %d was next", v[0], v[1], next[v[0]])
			}
			next[v[0]] = v[1] + 1
			users++
			mu.Unlock()
			handled[v[0]] <- struct{}{}
		},
		system: func(any) {
			mu.Lock()
			sys++
			mu.Unlock()
		},
	}
	mb.RegisterHandlers(inv, p)
	var wg sync.WaitGroup
	stuck := make(chan string, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				mb.PostUserMessage([2]int{s, i})
				if i%100 == 0 {
					mb.PostSystemMessage(&actor.Restart{})
				}
				select {
				case <-handled[s]:
				case <-time.After(10 * time.Second):
					stuck <- fmt.Sprintf("sender %d: message %d not handed over within 10s: a lost wake-up", s, i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stuck)
	for s := range stuck {
		t.Fatal(s)
	}
	mu.Lock()
	defer mu.Unlock()
	if bad != "" {
		t.Fatal(bad)
	}
	if users != senders*each || sys != senders*each/100 {
		t.Errorf("%d user and %d system messages handed over, want %d and %d", users, sys, senders*each, senders*each/100)
	}
	if n := mb.UserMessageCount(); n != 0 {
		t.Errorf("UserMessageCount %d after every message was handed over", n)
	}
}

type funcInvoker struct{ user, system func(any) }

func (f *funcInvoker) InvokeSystemMessage(m any) { f.system(m) }
func (f *funcInvoker) InvokeUserMessage(m any)   { f.user(m) }
func (f *funcInvoker) EscalateFailure(r, m any)  { panic(fmt.Sprint("escalated: ", r)) }
