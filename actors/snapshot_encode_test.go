package actors

import (
	"bytes"
	"testing"
)

// TestSnapshotEncodingIsDeterministic: the same session table and state
// encode to the same bytes on every node, so a snapshot transfer resumes
// on a new leader that made the same snapshot (same index, term, size and
// checksum).
func TestSnapshotEncodingIsDeterministic(t *testing.T) {
	sessions := map[uint64]session{}
	for c := range uint64(50) {
		sessions[c*7919+1] = session{seq: c}
	}
	first := encodeSnapshot(sessions, []byte("state"))
	for range 20 {
		if again := encodeSnapshot(sessions, []byte("state")); !bytes.Equal(again, first) {
			t.Fatal("one session table encoded to different bytes")
		}
	}
}
