package actors_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"go.opentelemetry.io/otel/trace/noop"
)

// echoSM applies into a listSM and answers each command with the command
// itself, so that a caller can tell its own answer from another's. On the
// node named by boom it panics, once, on the command "boom" (an apply
// failure: the node fail-stops with proposals pending).
type echoSM struct {
	*listSM
	boom    bool
	boomed  *atomic.Bool
	applied *sync.Map // every command applied on any node
}

func (s echoSM) Apply(e *messages.Entry) any {
	if s.boom && string(e.Data) == "boom" && s.boomed.CompareAndSwap(false, true) {
		panic("boom")
	}
	s.listSM.Apply(e)
	s.applied.Store(string(e.Data), true)
	return string(e.Data)
}

// ProposeAndWait reuses reply addresses between callers (replybox.go): an
// answer sent twice, or sent after its caller was already answered, would
// reach the next caller of the same address, a wrong result to the wrong
// client. Many callers propose to every node while the cluster goes through
// leadership transfers, an ordered stop and restart of the leader, a crash
// and restart, and an apply failure on the leader (fail-stop with
// proposals pending); every answer must be its own proposal's: a success
// carries the caller's command as its result, no two successes share an
// index, and a proposal answered NotLeaderError or ErrRetry (never
// appended, or its slot taken by another leader's entry) is applied
// nowhere. A leader is also stopped while isolated (its pending proposals
// answered ErrStopped by the node actor) and isolated until a new leader
// overwrites its uncommitted entries (answered NotLeaderError by the
// applier): the paths that answer a proposal from elsewhere than its
// handler.
func TestProposeAndWaitAnswersAreTheCallersOwn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var boomed atomic.Bool
		var applied sync.Map
		boomNode := atomic.Uint64{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.tp = noop.NewTracerProvider()
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.StateMachine = echoSM{listSM: cfg.StateMachine.(*listSM), boom: id == boomNode.Load(), boomed: &boomed, applied: &applied}
			}
		})
		lead := c.waitLeader()

		var (
			stop     atomic.Bool
			wg       sync.WaitGroup
			mu       sync.Mutex
			byIndex  = map[uint64]string{}
			refused  []string           // answered NotLeaderError or ErrRetry
			answers  = map[string]int{} // outcome -> count, for the log
			failures []string
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			if len(failures) < 20 {
				failures = append(failures, fmt.Sprintf(format, args...))
			}
		}
		const callers = 24
		for cl := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; !stop.Load(); k++ {
					id := c.ids[(cl+k)%len(c.ids)]
					pid := c.node(id)
					if pid == nil {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					data := fmt.Sprintf("c%d-%d", cl, k)
					res, err := actors.ProposeAndWait(c.sys.Root, pid, &actors.Propose{Data: []byte(data)}, time.Second)
					outcome := "ok"
					var nl *actors.NotLeaderError
					switch {
					case err == nil:
						if got, _ := res.Result.(string); got != data {
							fail("caller %d proposed %q to node %d, answered %q (index %d, term %d): another proposal's answer", cl, data, id, res.Result, res.Index, res.Term)
						}
						mu.Lock()
						if prev, ok := byIndex[res.Index]; ok && prev != data {
							failures = append(failures, fmt.Sprintf("index %d answered to %q and to %q", res.Index, prev, data))
						}
						byIndex[res.Index] = data
						mu.Unlock()
					case errors.As(err, &nl):
						outcome = "not leader"
						mu.Lock()
						refused = append(refused, data)
						mu.Unlock()
						time.Sleep(time.Millisecond)
					case errors.Is(err, actors.ErrStopped):
						outcome = "stopped"
						time.Sleep(time.Millisecond)
					case errors.Is(err, actors.ErrOutcomeUnknown):
						outcome = "unknown"
					case errors.Is(err, actors.ErrRetry), errors.Is(err, actors.ErrPaused):
						outcome = "retry"
						mu.Lock()
						refused = append(refused, data)
						mu.Unlock()
						time.Sleep(time.Millisecond)
					default:
						fail("caller %d proposed %q to node %d: unexpected error %v", cl, data, id, err)
					}
					mu.Lock()
					answers[outcome]++
					mu.Unlock()
				}
			}()
		}

		phase := func() { time.Sleep(300 * time.Millisecond) } // fake time: callers propose
		phase()
		for range 3 { // leadership moves: proposals in flight lose their slot
			next := c.others(lead)[0]
			if _, err := actors.Request[*actors.TransferLeadershipResponse](c.sys.Root, c.node(lead), &actors.TransferLeadership{To: next}, 5*time.Second); err != nil {
				t.Logf("transfer %d -> %d: %v", lead, next, err)
			}
			phase()
			lead = c.waitLeader()
		}
		// An ordered stop of the leader with proposals pending, and a restart.
		c.stop(lead)
		phase()
		c.restart(lead)
		lead = c.waitLeader()
		phase()
		// The same while it is cut off: its proposals cannot commit, the
		// node actor answers them ErrStopped as it stops.
		c.net.Isolate(lead)
		time.Sleep(30 * time.Millisecond)
		c.stop(lead)
		c.net.Heal()
		c.restart(lead)
		lead = c.waitLeader()
		phase()
		// A leader cut off long enough for another to be elected: its
		// uncommitted entries are overwritten once it is back.
		old := lead
		c.net.Isolate(old)
		time.Sleep(500 * time.Millisecond)
		c.net.Heal()
		lead = c.waitLeader()
		t.Logf("isolated leader %d, leader now %d", old, lead)
		phase()
		// A crash of the leader (no answers for what was pending), a restart.
		c.crash(lead)
		phase()
		c.restart(lead)
		lead = c.waitLeader()
		phase()
		// An apply failure on the leader: it fail-stops with proposals
		// pending in its applier and in its node actor.
		boomNode.Store(lead)
		c.stop(lead)
		c.restart(lead)
		if l := c.waitLeader(); l != boomNode.Load() {
			if _, err := actors.Request[*actors.TransferLeadershipResponse](c.sys.Root, c.node(l), &actors.TransferLeadership{To: boomNode.Load()}, 5*time.Second); err != nil {
				t.Logf("transfer %d -> %d: %v", l, boomNode.Load(), err)
			}
		}
		lead = c.waitLeader()
		boomNode.Store(0)
		phase()
		if _, err := actors.ProposeAndWait(c.sys.Root, c.node(lead), &actors.Propose{Data: []byte("boom")}, time.Second); err == nil {
			t.Logf("boom proposed to node %d was answered without error", lead)
		}
		phase()
		// The failed node is gone: the cluster's cleanup does not stop it.
		c.mu.Lock()
		for id, pid := range c.nodes {
			if pid != nil {
				if _, err := actors.Request[*actors.Status](c.sys.Root, pid, &actors.GetStatus{}, time.Second); errors.Is(err, actors.ErrStopped) {
					c.nodes[id] = nil
				}
			}
		}
		c.mu.Unlock()
		stop.Store(true)
		wg.Wait()
		if !boomed.Load() {
			t.Error("the apply failure was never provoked: the test did not cover the fail-stop path")
		}
		t.Logf("answers: %v, %d distinct indexes answered ok", answers, len(byIndex))
		for _, f := range failures {
			t.Error(f)
		}
		for _, d := range refused {
			if _, ok := applied.Load(d); ok {
				t.Errorf("%q was answered NotLeaderError or ErrRetry but applied: another proposal's answer", d)
				break
			}
		}
		if answers["ok"] == 0 || answers["not leader"] == 0 || answers["stopped"] == 0 {
			t.Errorf("answers %v: the run did not cover successes, redirects and stops", answers)
		}
	})
}
