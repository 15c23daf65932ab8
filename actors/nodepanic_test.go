package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// panicky is a transport whose PeerStatus panics when armed: a panic
// inside the node actor itself (GetStatus calls PeerStatus).
type panicky struct {
	transport.Transport
	armed atomic.Bool
}

func (p *panicky) PeerStatus() map[uint64]transport.PeerState {
	if p.armed.Load() {
		panic("transport status broke")
	}
	return nil
}

// A panic in the node actor stops the node with the true reason (no
// restart, no misleading "persister terminated"), and pending proposals
// are answered ErrStopped.
func TestNodeActorPanicStopsWithTheReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		trs := map[uint64]*panicky{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				p := &panicky{Transport: cfg.Transport}
				trs[id] = p
				cfg.Transport = p
			}
		})
		lead := c.waitLeader()
		c.net.Isolate(lead) // the next proposal stays pending
		pending := c.sys.Root.RequestFuture(c.node(lead), &actors.Propose{Data: []byte("pending")}, 30*time.Second)
		c.drainEvents()
		trs[lead].armed.Store(true)
		c.sys.Root.Send(c.node(lead), &actors.GetStatus{})
		res, err := pending.Result()
		if err != nil {
			t.Fatalf("pending proposal: %v", err)
		}
		if pr := res.(*actors.ProposeResponse); !errors.Is(pr.Err, actors.ErrStopped) || !strings.Contains(pr.Err.Error(), "transport status broke") {
			t.Fatalf("pending proposal answered %v, want ErrStopped with the panic", pr.Err)
		}
		deadline := time.After(30 * time.Second)
		for {
			select {
			case ev := <-c.events:
				if ns, ok := ev.(*actors.NodeStopped); ok && ns.NodeID == lead {
					if ns.Err == nil || !strings.Contains(ns.Err.Error(), "transport status broke") {
						t.Fatalf("NodeStopped %q %v, want the panic as the cause", ns.Reason, ns.Err)
					}
					c.mu.Lock()
					c.nodes[lead] = nil
					c.mu.Unlock()
					c.net.Heal()
					return
				}
			case <-deadline:
				t.Fatal("no NodeStopped from the panicking node within 30s (fake time)")
			}
		}
	})
}

// panicStore panics on Save when armed.
type panicStore struct {
	*memstore.Store
	armed *atomic.Bool
}

func (p panicStore) Save(ctx context.Context, u persistence.Update) error {
	if p.armed.Load() {
		panic("the store broke")
	}
	return p.Store.Save(ctx, u)
}

// A panic in the persister (here, in the LogStore) stops the node with the
// panic as the reason, and the proposal is answered.
func TestStorePanicStopsWithTheReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var armed atomic.Bool
		s := newSolo(t, func(cfg *actors.Config) { cfg.LogStore = panicStore{Store: memstore.New(), armed: &armed} })
		if _, err := s.propose("a"); err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		if _, err := actors.ProposeAndWait(s.sys.Root, s.node, &actors.Propose{Data: []byte("b")}, 5*time.Second); !errors.Is(err, actors.ErrStopped) || !strings.Contains(err.Error(), "the store broke") {
			t.Fatalf("proposal when the store panicked: %v, want ErrStopped with the panic", err)
		}
		if ns := s.stopped(); ns.Err == nil || !strings.Contains(ns.Err.Error(), "the store broke") {
			t.Fatalf("NodeStopped %q %v, want the panic as the cause", ns.Reason, ns.Err)
		}
	})
}
