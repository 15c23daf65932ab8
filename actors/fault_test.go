package actors_test

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// runClients runs n clients proposing until stop is closed; it returns the
// acknowledged commands.
func runClients(c *cluster, n int, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{c: c, id: uint64(100 + i)}
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				// Pace the client: under synctest, fake time advances only
				// when every goroutine is blocked.
				time.Sleep(time.Millisecond)
				cmd := fmt.Sprintf("c%d-%d", i, k)
				if cl.propose(cmd, 50) {
					mu.Lock()
					acked = append(acked, cmd)
					mu.Unlock()
				}
			}
		}()
	}
	return func() []string { wg.Wait(); return acked }
}

// A leader that crashes (its unsaved state lost) and restarts loses no
// acknowledged proposal, and no command is applied twice.
func TestLeaderCrashKeepsAcknowledgedProposals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		stop := make(chan struct{})
		wait := runClients(c, 4, stop)
		c.waitApplied(100, lead)
		c.crash(lead)
		others := c.others(lead)
		newLead := c.waitLeader(others...)
		if newLead == lead {
			t.Fatalf("crashed node %d still leads", lead)
		}
		c.waitApplied(len(c.sm(newLead).list())+100, newLead)
		c.restart(lead)
		c.waitApplied(len(c.sm(newLead).list())+100, newLead)
		close(stop)
		acked := wait()
		if len(acked) < 300 {
			t.Fatalf("only %d proposals acknowledged", len(acked))
		}
		c.checkAcked(acked)
		t.Logf("%d acknowledged proposals survived the leader's crash", len(acked))
	})
}

// A partitioned leader is replaced; after the partition heals, every node
// converges and keeps every acknowledged proposal.
func TestPartitionThenHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 5)
		lead := c.waitLeader()
		stop := make(chan struct{})
		wait := runClients(c, 4, stop)
		c.waitApplied(100, lead)
		c.net.Isolate(lead)
		others := c.others(lead)
		newLead := c.waitLeader(others...)
		c.waitApplied(len(c.sm(newLead).list())+100, newLead)
		c.net.Heal()
		c.waitLeader()
		close(stop)
		acked := wait()
		c.checkAcked(acked)
		if s := c.status(lead); s.Term <= 1 {
			t.Fatalf("old leader did not learn the new term: %v", s)
		}
		t.Logf("%d acknowledged proposals kept across the partition", len(acked))
	})
}
