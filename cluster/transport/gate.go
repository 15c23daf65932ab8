package transport

import (
	"sync/atomic"

	"github.com/flotilla-raft/flotilla/messages"
)

// Gate is the inbound filter every node applies to what its transport
// delivers, whatever the transport: it admits a message only if
//
//   - its cluster_id is the local cluster id (a message from another
//     cluster that happens to reach this address is dropped),
//   - its `to` is the local node id (a misrouted message is dropped),
//   - its sender `from` is non-zero and a member according to the
//     membership predicate (a removed or unknown node cannot disturb the
//     cluster, for example by forcing elections with higher terms), unless
//     it is a message only a leader sends (append, heartbeat, snapshot).
//
// Leader messages pass from any sender because Raft requires a server to
// accept a leader that is not in its own latest configuration (thesis
// §4.1): a member that missed the change adding that leader learns it from
// the leader's log, and would otherwise wait for ever. This lets no
// non-member disturb the cluster: a leader's term is checked by Raft like
// any other (a stale removed leader is told the newer term and steps down),
// and votes, the messages that start elections, still need membership.
//
// Every drop is counted by reason; GateStats feeds the node's status.
// Gate is safe for concurrent use. The zero value is not usable: use
// NewGate.
//
// The membership predicate is called on every Admit, possibly from several
// goroutines; it is the caller's to make cheap and safe (for example a
// lookup in an atomically swapped set). A node whose own configuration is
// not known yet (a joining learner) should use a predicate that accepts the
// senders it expects, such as any non-zero id.
type Gate struct {
	clusterID uint64
	localID   uint64
	isMember  func(id uint64) bool

	admitted       atomic.Uint64
	wrongCluster   atomic.Uint64
	wrongTo        atomic.Uint64
	notMember      atomic.Uint64
	invalidMessage atomic.Uint64
}

// GateStats counts a Gate's decisions. Counters only grow.
type GateStats struct {
	Admitted uint64
	// DroppedWrongCluster: cluster_id differs from the local cluster id.
	DroppedWrongCluster uint64
	// DroppedWrongTo: `to` is not the local node id.
	DroppedWrongTo uint64
	// DroppedNotMember: `from` is zero, or not a member and the message
	// is not a leader's (append, heartbeat, snapshot).
	DroppedNotMember uint64
	// DroppedInvalid: a nil message.
	DroppedInvalid uint64
}

// Dropped is the total of all drop counters.
func (s GateStats) Dropped() uint64 {
	return s.DroppedWrongCluster + s.DroppedWrongTo + s.DroppedNotMember + s.DroppedInvalid
}

// NewGate returns a gate for node localID of cluster clusterID. isMember
// says whether a sender id is a member; nil admits any non-zero sender.
func NewGate(clusterID, localID uint64, isMember func(id uint64) bool) *Gate {
	return &Gate{clusterID: clusterID, localID: localID, isMember: isMember}
}

// Admit reports whether m passes the gate, counting it either way. The
// checks run in the order cluster id, addressee, sender, so each message is
// counted under exactly one reason.
func (g *Gate) Admit(m *messages.Message) bool {
	switch {
	case m == nil:
		g.invalidMessage.Add(1)
	case m.GetClusterId() != g.clusterID:
		g.wrongCluster.Add(1)
	case m.GetTo() != g.localID:
		g.wrongTo.Add(1)
	case m.GetFrom() == 0 || (g.isMember != nil && !fromLeader(m) && !g.isMember(m.GetFrom())):
		g.notMember.Add(1)
	default:
		g.admitted.Add(1)
		return true
	}
	return false
}

// fromLeader reports whether m is of a type only a leader sends.
func fromLeader(m *messages.Message) bool {
	switch m.GetType() {
	case messages.MessageType_MSG_APPEND, messages.MessageType_MSG_HEARTBEAT, messages.MessageType_MSG_SNAPSHOT,
		messages.MessageType_MSG_SNAPSHOT_CHUNK:
		return true
	}
	return false
}

// Wrap returns a Handler that passes to h only the messages g admits.
func (g *Gate) Wrap(h Handler) Handler {
	return func(m *messages.Message) {
		if g.Admit(m) {
			h(m)
		}
	}
}

// Stats returns the gate's counters.
func (g *Gate) Stats() GateStats {
	return GateStats{
		Admitted:            g.admitted.Load(),
		DroppedWrongCluster: g.wrongCluster.Load(),
		DroppedWrongTo:      g.wrongTo.Load(),
		DroppedNotMember:    g.notMember.Load(),
		DroppedInvalid:      g.invalidMessage.Load(),
	}
}
