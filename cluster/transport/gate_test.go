package transport_test

import (
	"testing"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

func TestGate(t *testing.T) {
	members := map[uint64]bool{1: true, 2: true, 3: true}
	g := transport.NewGate(7, 2, func(id uint64) bool { return members[id] })
	var delivered []*messages.Message
	h := g.Wrap(func(m *messages.Message) { delivered = append(delivered, m) })

	for _, tc := range []struct {
		name  string
		m     *messages.Message
		admit bool
	}{
		{"member", &messages.Message{ClusterId: 7, From: 1, To: 2}, true},
		{"other cluster", &messages.Message{ClusterId: 8, From: 1, To: 2}, false},
		{"wrong to", &messages.Message{ClusterId: 7, From: 1, To: 3}, false},
		{"non-member", &messages.Message{ClusterId: 7, From: 9, To: 2}, false},
		{"zero sender", &messages.Message{ClusterId: 7, From: 0, To: 2}, false},
		{"nil", nil, false},
		{"another member", &messages.Message{ClusterId: 7, From: 3, To: 2}, true},
		// A leader this node does not know yet passes (Raft learns the
		// configuration from the leader's log); its votes do not.
		{"non-member append", &messages.Message{Type: messages.MessageType_MSG_APPEND, ClusterId: 7, From: 9, To: 2}, true},
		{"non-member heartbeat", &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 7, From: 9, To: 2}, true},
		{"non-member snapshot", &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT, ClusterId: 7, From: 9, To: 2}, true},
		{"non-member snapshot chunk", &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT_CHUNK, ClusterId: 7, From: 9, To: 2}, true},
		{"non-member snapshot ack", &messages.Message{Type: messages.MessageType_MSG_SNAPSHOT_ACK, ClusterId: 7, From: 9, To: 2}, false},
		{"non-member vote", &messages.Message{Type: messages.MessageType_MSG_VOTE, ClusterId: 7, From: 9, To: 2}, false},
		{"non-member pre-vote", &messages.Message{Type: messages.MessageType_MSG_PRE_VOTE, ClusterId: 7, From: 9, To: 2}, false},
		{"non-member append response", &messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, ClusterId: 7, From: 9, To: 2}, false},
		{"leader message of another cluster", &messages.Message{Type: messages.MessageType_MSG_APPEND, ClusterId: 8, From: 9, To: 2}, false},
		{"leader message from zero", &messages.Message{Type: messages.MessageType_MSG_HEARTBEAT, ClusterId: 7, From: 0, To: 2}, false},
	} {
		if got := g.Admit(tc.m); got != tc.admit {
			t.Errorf("%s: Admit = %v, want %v", tc.name, got, tc.admit)
		}
		h(tc.m)
	}
	want := transport.GateStats{
		Admitted: 12, DroppedWrongCluster: 4, DroppedWrongTo: 2, DroppedNotMember: 14, DroppedInvalid: 2,
	}
	if got := g.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if got := g.Stats().Dropped(); got != 22 {
		t.Errorf("Dropped = %d, want 22", got)
	}
	if len(delivered) != 6 {
		t.Errorf("Wrap delivered %d messages, want 6", len(delivered))
	}

	// A nil predicate admits any non-zero sender.
	open := transport.NewGate(7, 2, nil)
	if !open.Admit(&messages.Message{ClusterId: 7, From: 42, To: 2}) {
		t.Error("nil predicate refused a non-zero sender")
	}
	if open.Admit(&messages.Message{ClusterId: 7, From: 0, To: 2}) {
		t.Error("nil predicate admitted sender 0")
	}
}
