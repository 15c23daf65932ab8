package membership

import (
	"errors"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// TestSettingsDefaults: a configuration without settings gets
// DefaultSettings, from the wire (Decode) or when filled (WithSettings);
// one with settings keeps them; the input is never mutated.
func TestSettingsDefaults(t *testing.T) {
	bare := &messages.ClusterConfig{Voters: []*messages.Member{member(1)}}
	data, err := proto.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(cc.Settings, DefaultSettings()) {
		t.Fatalf("Decode settings %v, want %v", cc.Settings, DefaultSettings())
	}
	if _, err := Decode([]byte{0xff, 0xff}); err == nil {
		t.Fatal("Decode of garbage: no error")
	}
	filled := WithSettings(bare, nil)
	if bare.Settings != nil || !proto.Equal(filled.Settings, DefaultSettings()) {
		t.Fatalf("WithSettings(nil): input %v, result %v", bare.Settings, filled.Settings)
	}
	mine := &messages.Settings{ElectionTicks: 20, HeartbeatTicks: 2}
	if got := WithSettings(bare, mine); !proto.Equal(got.Settings, mine) || got.Settings == mine {
		t.Fatalf("WithSettings(mine) = %v (shared: %v)", got.Settings, got.Settings == mine)
	}
	if got := WithSettings(filled, mine); got != filled {
		t.Fatal("WithSettings replaced settings that were there")
	}
	if err := Validate(&messages.ClusterConfig{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate(empty) = %v, want ErrInvalid", err)
	}
}

// TestTransitionsDoNotMutate: every transition returns a new value.
func TestTransitionsDoNotMutate(t *testing.T) {
	cur := &messages.ClusterConfig{Voters: []*messages.Member{member(1), member(2)}, Learners: []*messages.Member{member(3)}, Settings: DefaultSettings()}
	before := proto.Clone(cur)
	AddLearner(cur, member(4))
	Remove(cur, 1)
	Promote(cur, 3)
	Demote(cur, 2)
	if _, err := Enter(cur, &messages.ClusterConfig{Voters: []*messages.Member{member(5), member(6)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := LeaveJoint(cur); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(cur, before) {
		t.Fatalf("a transition mutated its input: %v, was %v", cur, before)
	}
}
