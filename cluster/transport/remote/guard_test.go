package remote

import (
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

const testReceiver = "flotilla-raft-1"

// hostileBatch has one good envelope among envelopes that would crash or
// steer protoactor's endpoint reader.
func hostileBatch(good []byte) *premote.MessageBatch {
	return &premote.MessageBatch{
		TypeNames: []string{envelopeType, "no.such.Type", "actor.Stop"},
		Targets:   []*actor.PID{{Address: "x", Id: testReceiver}, {Address: "x", Id: "activator"}, nil},
		Senders:   []*actor.PID{{Address: "y", Id: "s"}},
		Envelopes: []*premote.MessageEnvelope{
			{TypeId: 0, Target: 0, MessageData: good},            // kept
			{TypeId: 1, Target: 0},                               // unregistered type: nil deref
			{TypeId: 2, Target: 0},                               // a system message
			{TypeId: 7, Target: 0},                               // type index out of range
			{TypeId: 0, Target: 5},                               // target index out of range
			{TypeId: 0, Target: -1},                              // negative target
			{TypeId: 0, Target: 0, Sender: 2},                    // sender index out of range
			{TypeId: 0, Target: 0, SerializerId: 9},              // unknown serializer
			{TypeId: 0, Target: 1},                               // another actor
			{TypeId: 0, Target: 2},                               // nil target
			nil,                                                  // nil envelope
			{TypeId: 0, Target: 0, Sender: 1, MessageData: good}, // kept, with a sender
		},
	}
}

func TestFilterBatch(t *testing.T) {
	good, _ := proto.Marshal(&messages.Envelope{Version: 1})
	b := hostileBatch(good)
	if removed := filterBatch(b, testReceiver); removed != 10 {
		t.Fatalf("removed %d envelopes, want 10", removed)
	}
	if len(b.Envelopes) != 2 {
		t.Fatalf("kept %d envelopes, want 2", len(b.Envelopes))
	}
	processLikeProtoactor(t, b)
}

// processLikeProtoactor does to a filtered batch what protoactor's endpoint
// reader does (index lookups, deserialisation) and then our receiver: it
// must not panic.
func processLikeProtoactor(t *testing.T, b *premote.MessageBatch) {
	t.Helper()
	for _, e := range b.Envelopes {
		_ = b.Targets[e.Target].Id
		if e.Sender > 0 {
			_ = b.Senders[e.Sender-1]
		}
		msg, err := premote.Deserialize(e.MessageData, b.TypeNames[e.TypeId], e.SerializerId)
		if err != nil {
			continue
		}
		env, ok := msg.(*messages.Envelope)
		if !ok {
			t.Fatalf("a %T passed the guard", msg)
		}
		(transport.Codec{}).Unwrap(env)
	}
}

// FuzzFilterBatch: whatever batch a peer sends, what the guard lets
// through is safe for protoactor and our receiver.
func FuzzFilterBatch(f *testing.F) {
	good, _ := proto.Marshal(&messages.Envelope{Version: 1, Payload: []byte{0x08, 0x01}})
	seed, _ := proto.Marshal(hostileBatch(good))
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := new(premote.MessageBatch)
		if proto.Unmarshal(data, b) != nil {
			return
		}
		filterBatch(b, testReceiver)
		processLikeProtoactor(t, b)
	})
}
