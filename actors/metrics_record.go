package actors

import (
	"context"
	"time"

	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/tracing"
)

// proposed times a proposal the leader accepted at index.
func (m *nodeMetrics) proposed(index uint64) {
	if m != nil && len(m.pendingCommit) < maxTimedProposals {
		m.pendingCommit = append(m.pendingCommit, proposalTime{index, time.Now()})
	}
}

// afterReady records the commit latency of the proposals committed now and
// publishes term and commit index.
func (m *nodeMetrics) afterReady(r *raft.Raft) {
	if m == nil {
		return
	}
	commit := r.Committed()
	if len(m.pendingCommit) > 0 && m.pendingCommit[0].index <= commit {
		now := time.Now()
		k := 0
		for k < len(m.pendingCommit) && m.pendingCommit[k].index <= commit {
			m.commitDur.Record(bg, now.Sub(m.pendingCommit[k].at).Seconds(), m.node.rec...)
			k++
		}
		if len(m.pendingApply) < maxTimedProposals {
			m.pendingApply = append(m.pendingApply, m.pendingCommit[:k]...)
		}
		m.pendingCommit = append(m.pendingCommit[:0], m.pendingCommit[k:]...)
	}
	m.mu.Lock()
	m.g.term, m.g.commit = r.Term(), commit
	m.mu.Unlock()
}

// appliedUpTo records the apply latency of the proposals applied now and
// publishes the applied index.
func (m *nodeMetrics) appliedUpTo(index uint64) {
	if m == nil {
		return
	}
	if len(m.pendingApply) > 0 && m.pendingApply[0].index <= index {
		now := time.Now()
		k := 0
		for k < len(m.pendingApply) && m.pendingApply[k].index <= index {
			m.applyDur.Record(bg, now.Sub(m.pendingApply[k].at).Seconds(), m.node.rec...)
			k++
		}
		m.pendingApply = append(m.pendingApply[:0], m.pendingApply[k:]...)
	}
	m.mu.Lock()
	m.g.applied = max(m.g.applied, index)
	m.mu.Unlock()
}

// tick publishes the leader's per-peer match lag (nothing on other roles).
func (m *nodeMetrics) tick(r *raft.Raft) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.g.peers)
	if r.Role() != raft.Leader {
		return
	}
	st := r.Status()
	if m.g.peers == nil {
		m.g.peers = map[uint64]uint64{}
	}
	for _, p := range st.Progress {
		if p.ID != st.ID {
			m.g.peers[p.ID] = st.LastIndex - min(p.Match, st.LastIndex)
		}
	}
}

// event counts elections and leader changes.
func (m *nodeMetrics) event(ev raft.Event) {
	if m == nil {
		return
	}
	switch ev.Kind {
	case raft.EventLeaderChanged:
		if ev.Leader != 0 {
			m.leaderChanges.Add(bg, 1, m.node.add...)
		}
	case raft.EventRoleChanged:
		if a, ok := m.byRole[ev.To]; ok {
			m.electionsStarted.Add(bg, 1, a.add...)
		}
		if ev.To == raft.Leader {
			m.electionsWon.Add(bg, 1, m.node.add...)
		}
		if ev.From == raft.Leader {
			// Proposals not yet committed are answered NotLeader or lost.
			m.pendingCommit, m.pendingApply = m.pendingCommit[:0], m.pendingApply[:0]
		}
	}
}

// sent counts an outbound message, handed to the transport or to a peer's
// replicator (which counts a failed send with drop).
func (m *nodeMetrics) sent(msg *messages.Message) {
	if m == nil {
		return
	}
	m.sentCount.Add(bg, 1, m.typeAttrs(msg.Type).add...)
	switch msg.Type {
	case messages.MessageType_MSG_APPEND:
		if n := len(msg.Entries); n > 0 {
			m.appendEntries.Record(bg, int64(n), m.node.rec...)
		}
	case messages.MessageType_MSG_SNAPSHOT:
		m.snapSize.Record(bg, int64(len(msg.GetSnapshot().GetData())), m.snapSend.rec...)
	}
}

// admit passes msg through the gate, counting it as received or as dropped
// with the gate's cause.
func (m *nodeMetrics) admit(g *transport.Gate, msg *messages.Message) bool {
	if m == nil {
		return g.Admit(msg)
	}
	before := g.Stats()
	if g.Admit(msg) {
		m.received.Add(bg, 1, m.typeAttrs(msg.Type).add...)
		return true
	}
	after := g.Stats()
	cause := tracing.DropInvalid
	switch {
	case after.DroppedWrongCluster > before.DroppedWrongCluster:
		cause = tracing.DropWrongCluster
	case after.DroppedNotMember > before.DroppedNotMember:
		cause = tracing.DropNonMember
	case after.DroppedWrongTo > before.DroppedWrongTo:
		cause = tracing.DropWrongTarget
	}
	m.drop(msg, cause)
	return false
}

// overloaded counts a request refused with ErrOverloaded for cause (a
// tracing.Overload* value). Rare: its attributes are not cached.
func (m *nodeMetrics) overloaded(cause string) {
	if m != nil {
		m.overloads.Add(bg, 1, newAttrs(m.nodeAttribute, tracing.AttrOverload.String(cause)).add...)
	}
}

// drop counts a message refused or lost for cause (a tracing.Drop* value).
// Safe from any actor.
func (m *nodeMetrics) drop(msg *messages.Message, cause string) {
	if m == nil {
		return
	}
	t := msg.GetType()
	a, ok := m.byTypeCause[dropKey{t, cause}]
	if !ok {
		a = newAttrs(m.nodeAttribute, tracing.AttrMsgType.String(msgTypeName(t)), tracing.AttrDropCause.String(cause))
	}
	m.dropped.Add(bg, 1, a.add...)
}

func (m *nodeMetrics) typeAttrs(t messages.MessageType) attrs {
	if a, ok := m.byType[t]; ok {
		return a
	}
	return newAttrs(m.nodeAttribute, tracing.AttrMsgType.String(msgTypeName(t)))
}

// save is the persister's group commit, timed.
func (p *persister) save(u persistence.Update) error {
	start := time.Now()
	err := p.store.Save(context.Background(), u)
	if m := p.metrics; m != nil && err == nil {
		m.syncDur.Record(bg, time.Since(start).Seconds(), m.node.rec...)
		m.syncEntries.Record(bg, int64(len(u.Entries)), m.node.rec...)
	}
	return err
}

// timedSnapshot is the applier's snapshot, timed and measured.
func (a *applier) timedSnapshot() ([]byte, error) {
	start := time.Now()
	data, err := a.snapshot()
	if err == nil {
		a.metrics.snapshotTaken(start, int64(len(data)))
	}
	return data, err
}

// snapshotTaken records a snapshot of size bytes, taken since start.
func (m *nodeMetrics) snapshotTaken(start time.Time, size int64) {
	if m != nil {
		m.snapDur.Record(bg, time.Since(start).Seconds(), m.snapTake.rec...)
		m.snapSize.Record(bg, size, m.snapTake.rec...)
	}
}

// timedRestore is the applier's restore of a snapshot, timed and measured.
func (a *applier) timedRestore(s *messages.Snapshot, d persistence.SnapshotData) error {
	start := time.Now()
	size, err := a.restore(s, d)
	if m := a.metrics; m != nil && err == nil {
		m.snapDur.Record(bg, time.Since(start).Seconds(), m.snapInstall.rec...)
		m.snapSize.Record(bg, size, m.snapInstall.rec...)
	}
	return err
}

// readDone records the latency of a read that arrived at start.
func (m *nodeMetrics) readDone(start time.Time) {
	if m != nil && !start.IsZero() {
		m.readDur.Record(bg, time.Since(start).Seconds(), m.node.rec...)
	}
}
