package actors_test

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// A cluster on Pebble (real directories) stops in order and starts again
// from its directories: same log, same commands re-applied in the same
// order, and it carries on.
func TestRestartFromDataDir(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		c := newClusterWith(t, 3, func(c *cluster) {
			c.onPebble(dir)
		})
		lead := c.waitLeader()
		for i := range 50 {
			if _, err := c.propose(lead, fmt.Sprintf("cmd-%d", i)); err != nil {
				t.Fatalf("propose %d: %v", i, err)
			}
		}
		c.waitApplied(50, c.ids...)
		before := c.sm(lead).list()
		before1 := c.status(lead)
		c.stopAll()

		for _, id := range c.ids {
			c.start(id)
		}
		lead = c.waitLeader()
		c.waitApplied(50, c.ids...)
		for _, id := range c.ids {
			if got := c.sm(id).list()[:50]; !slices.Equal(got, before) {
				t.Fatalf("node %d re-applied %v..., want %v...", id, got[:3], before[:3])
			}
		}
		if s := c.status(lead); s.Term <= before1.Term || s.LastIndex < before1.LastIndex {
			t.Fatalf("after restart: term %d last %d, before: term %d last %d", s.Term, s.LastIndex, before1.Term, before1.LastIndex)
		}
		if _, err := actors.ProposeAndWait(c.sys.Root, c.node(lead), &actors.Propose{Data: []byte("after")}, 5*time.Second); err != nil {
			t.Fatalf("propose after restart: %v", err)
		}
	})
}
