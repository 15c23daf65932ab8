package actors_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
)

// A leadership transfer to a voter that cannot be reached is answered
// ErrRetry once the core gives up on it (EventTransferAborted, after an
// election timeout), and the leader goes on leading; a Stop of that leader
// then still stops it, handing over to the voter it can reach.
func TestTransferToUnreachableVoterIsAborted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, 3)
		lead := c.waitLeader()
		others := c.others(lead)
		to, third := others[0], others[1]
		c.net.Isolate(to)

		start := time.Now()
		_, err := actors.Request[*actors.TransferLeadershipResponse](c.sys.Root, c.node(lead), &actors.TransferLeadership{To: to}, 10*time.Second)
		if !errors.Is(err, actors.ErrRetry) || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("transfer to isolated node %d: %v, want ErrRetry (the core aborted it)", to, err)
		}
		// Ticks are 10ms and the election timeout 10 ticks: the core gives
		// up after one election timeout, not after the 10s wait.
		if d := time.Since(start); d > time.Second {
			t.Fatalf("the transfer was answered after %v, want about one election timeout", d)
		}
		if got := c.waitLeader(lead, third); got != lead {
			t.Fatalf("leader after the aborted transfer: %d, want %d", got, lead)
		}

		if _, err := actors.Request[*actors.Stopped](c.sys.Root, c.node(lead), &actors.Stop{}, 10*time.Second); err != nil {
			t.Fatalf("stop leader %d: %v", lead, err)
		}
		c.mu.Lock()
		c.nodes[lead] = nil
		c.mu.Unlock()
		if got := c.waitLeader(third); got != third {
			t.Fatalf("after the leader stopped, %d leads, want %d (the only voter it could hand over to)", got, third)
		}
	})
}
