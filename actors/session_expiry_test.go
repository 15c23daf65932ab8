package actors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// Sessions expire by count (MaxSessions, least recently used first) and by
// age (SessionTTL entries after the client's last one), the same way on
// every replica, also on one restarted from a snapshot that carries the
// table: a client that comes back with its next sequence is answered
// ErrSessionExpired, and every node answered ErrSessionExpired for the
// same entries.
func TestSessionsExpireTheSameWayOnEveryReplica(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxSessions, ttl = 3, 20
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(_ uint64, cfg *actors.Config) {
				cfg.MaxSessions, cfg.SessionTTL = maxSessions, ttl
			}
		})
		lead := c.waitLeader()
		var lastIndex uint64
		used := map[uint64]uint64{} // client -> index of its last entry
		propose := func(client, seq uint64) error {
			t.Helper()
			res, err := actors.ProposeAndWait(c.sys.Root, c.node(lead), &actors.Propose{Data: fmt.Appendf(nil, "%d.%d", client, seq), ClientID: client, Sequence: seq}, 5*time.Second)
			if err != nil && !errors.Is(err, actors.ErrSessionExpired) && !errors.Is(err, actors.ErrDuplicate) {
				t.Fatalf("client %d seq %d: %v", client, seq, err)
			}
			if res != nil && res.Index > 0 {
				lastIndex = res.Index
				if err == nil || errors.Is(err, actors.ErrDuplicate) {
					used[client] = res.Index
				}
			}
			return err
		}
		mustExpire := func(client, seq uint64, why string) {
			t.Helper()
			if err := propose(client, seq); !errors.Is(err, actors.ErrSessionExpired) {
				t.Fatalf("client %d seq %d (%s): %v, want ErrSessionExpired", client, seq, why, err)
			}
		}
		mustPass := func(client, seq uint64) {
			t.Helper()
			if err := propose(client, seq); err != nil {
				t.Fatalf("client %d seq %d: %v", client, seq, err)
			}
		}

		// By count: a fourth client pushes out the least recently used.
		for client := uint64(1); client <= 4; client++ {
			mustPass(client, 1)
		}
		mustExpire(1, 2, "pushed out by client 4")
		mustPass(2, 2) // a live session goes on
		if err := propose(2, 2); !errors.Is(err, actors.ErrDuplicate) && err != nil {
			t.Fatalf("a retry of client 2 seq 2: %v", err)
		}

		// The table goes into every node's snapshot; one node restarts
		// from it.
		for _, id := range c.ids {
			if _, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(id), &actors.TakeSnapshot{}, 5*time.Second); err != nil {
				t.Fatalf("snapshot on %d: %v", id, err)
			}
		}
		restarted := c.others(lead)[0]
		c.stop(restarted)
		c.start(restarted)

		// By age: client 5 (pushing out client 3, the least recently
		// used) proposes until client 4's next entry comes exactly
		// SessionTTL entries after its last one (the restarted node knows
		// that last use from the snapshot only); client 2, used later, is
		// still there then, and expires later.
		seq5 := uint64(0)
		for lastIndex+1 < used[4]+ttl {
			seq5++
			mustPass(5, seq5)
		}
		mustExpire(4, 2, "unused for SessionTTL entries")
		for lastIndex+1 < used[2]+ttl-1 {
			seq5++
			mustPass(5, seq5)
		}
		mustPass(2, 3) // one entry short of its expiry
		for lastIndex+1 < used[2]+ttl {
			seq5++
			mustPass(5, seq5)
		}
		mustExpire(2, 4, "unused for SessionTTL entries")
		mustPass(6, 1) // a new client starts at 1

		// Every node applied every entry with the same result.
		last := c.status(lead).Commit
		results := map[uint64]map[uint64]string{} // node -> index -> "true" if expired
		deadline := time.Now().Add(30 * time.Second)
		for done := false; !done; {
			select {
			case ev := <-c.events:
				if a, ok := ev.(*actors.EntryApplied); ok && a.Entry.ClientId != 0 {
					if results[a.NodeID] == nil {
						results[a.NodeID] = map[uint64]string{}
					}
					// Expired or not: a duplicate's result is known only
					// where the original was applied in this run.
					results[a.NodeID][a.Entry.Index] = fmt.Sprint(a.Result == actors.ErrSessionExpired)
				}
			case <-time.After(time.Until(deadline)):
				t.Fatalf("not every node applied up to %d within 30s (fake time)", last)
			}
			done = true
			for _, id := range c.ids {
				if _, ok := results[id][last]; !ok {
					done = false
				}
			}
		}
		expired := 0
		for idx, want := range results[lead] {
			for _, id := range c.ids {
				if got, ok := results[id][idx]; ok && got != want {
					t.Errorf("entry %d: expired on node %d %s, on the leader %s", idx, id, got, want)
				}
			}
			if want == "true" {
				expired++
			}
		}
		if expired != 3 {
			t.Errorf("%d entries answered ErrSessionExpired on the leader, want 3", expired)
		}
		if len(results[restarted]) == 0 {
			t.Errorf("the restarted node %d applied no client entry", restarted)
		}
	})
}

// A client's first proposal to a group past Sequence 1 (its session
// expired, or it never had one in this group: sessions are per group) is
// answered with an error that names the client and its sequence and says
// what to do, still ErrSessionExpired for errors.Is.
func TestSessionExpiredErrorSaysWhatToDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 1)
		lead := c.waitLeader()
		_, err := actors.ProposeAndWait(c.sys.Root, c.node(lead), &actors.Propose{Data: []byte("x"), ClientID: 5, Sequence: 3}, 5*time.Second)
		if !errors.Is(err, actors.ErrSessionExpired) {
			t.Fatalf("client 5 seq 3 without a session: %v, want ErrSessionExpired", err)
		}
		for _, want := range []string{"client 5", "sequence 3", "new ClientID", "Sequence 1"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})
}
