package actors_test

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// countingTransport counts the messages a node sends, by type.
type countingTransport struct {
	transport.Transport
	mu     *sync.Mutex
	counts map[messages.MessageType]int
}

func (c countingTransport) Send(to transport.Peer, m *messages.Message) error {
	c.mu.Lock()
	c.counts[m.Type]++
	c.mu.Unlock()
	return c.Transport.Send(to, m)
}

// Appends and acknowledgements per proposal, for 12 proposals issued
// together on 3 nodes: with the commit news riding the next heartbeat
// (the default) at most 4.5 per proposal, fewer than with the eager
// broadcast (CommitNewsTicks -1); and every follower applies within a
// heartbeat of the leader.
func TestMessagesPerProposal(t *testing.T) {
	const proposals = 12
	run := func(commitNews int) float64 {
		var perProposal float64
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			counts := map[messages.MessageType]int{}
			c := newClusterWith(t, 3, func(c *cluster) {
				c.configure = func(id uint64, cfg *actors.Config) {
					cfg.Raft.CommitNewsTicks = commitNews
					cfg.Transport = countingTransport{Transport: cfg.Transport, mu: &mu, counts: counts}
				}
			})
			lead := c.waitLeader()
			synctest.Wait()
			mu.Lock()
			clear(counts)
			mu.Unlock()
			start := time.Now()
			// Each proposal is sent once the previous one is appended, so
			// each travels in its own append while the earlier ones are
			// acknowledged and committed (in fake time, proposals sent at
			// once would all share one append).
			me, ch := inbox(c.sys)
			responses := 0
			for i := range proposals {
				c.sys.Root.RequestWithCustomSender(c.node(lead), &actors.Propose{Data: []byte(fmt.Sprint("cmd-", i)), ReplyOnAppend: true}, me)
				for accepted := false; !accepted; {
					switch m := next(t, ch).(type) {
					case *actors.ProposeAccepted:
						accepted = true
					case *actors.ProposeResponse:
						if m.Err != nil {
							t.Fatalf("proposal: %v", m.Err)
						}
						responses++
					}
				}
			}
			for responses < proposals {
				if m, ok := next(t, ch).(*actors.ProposeResponse); ok {
					if m.Err != nil {
						t.Fatalf("proposal: %v", m.Err)
					}
					responses++
				}
			}
			c.waitApplied(proposals, c.ids...)
			lag := time.Since(start)
			mu.Lock()
			appends, acks := counts[messages.MessageType_MSG_APPEND], counts[messages.MessageType_MSG_APPEND_RESP]
			hbs := counts[messages.MessageType_MSG_HEARTBEAT] + counts[messages.MessageType_MSG_HEARTBEAT_RESP]
			mu.Unlock()
			perProposal = float64(appends+acks) / proposals
			t.Logf("CommitNewsTicks %d: %.2f appends+acks per proposal (%d appends, %d acks; %d heartbeats and responses), every follower applied after %v",
				commitNews, perProposal, appends, acks, hbs, lag)
			// Heartbeats every tick (10ms): one bounds the followers' lag,
			// with a tick of slack for waitApplied's polling.
			if lag > 30*time.Millisecond {
				t.Errorf("followers applied %v after the proposals, want within a heartbeat (10ms) and a poll", lag)
			}
		})
		return perProposal
	}
	lazy, eager := run(0), run(-1)
	if lazy > 4.5 {
		t.Errorf("%.2f appends and acknowledgements per proposal, want at most 4.5", lazy)
	}
	if lazy >= eager {
		t.Errorf("lazy commit news (%.2f per proposal) saves nothing over eager (%.2f)", lazy, eager)
	}
}
