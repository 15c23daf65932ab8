package remote

import (
	"context"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

const testReceiver = "flotilla-raft-0-1"

func isTestReceiver(name string) bool { return name == testReceiver }

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
	if removed, forged := filterBatch(b, isTestReceiver, nil); removed != 10 || forged != 0 {
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
	mine, _ := (transport.Codec{}).Encode(&messages.Message{ClusterId: 1, From: 2, To: 1})
	seed, _ = proto.Marshal(hostileBatch(mine))
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := new(premote.MessageBatch)
		if proto.Unmarshal(data, b) != nil {
			return
		}
		id := Identity{ClusterID: 1, NodeID: 2}
		filterBatch(b, isTestReceiver, []Identity{id})
		processLikeProtoactor(t, b)
		for _, e := range b.Envelopes { // what the identity check let through is id's
			var env messages.Envelope
			m := new(messages.Message)
			if proto.Unmarshal(e.MessageData, &env) == nil && proto.Unmarshal(env.Payload, m) == nil &&
				(m.ClusterId != id.ClusterID || m.From != id.NodeID) {
				t.Fatalf("identity %v let through a message of cluster %d from %d", id, m.ClusterId, m.From)
			}
		}
	})
}

// TestFilterBatchIdentity: with an identity bound, only messages whose
// cluster id and sender are the identity's pass; duplicate fields are read
// the way proto.Unmarshal reads them (the last one wins).
func TestFilterBatchIdentity(t *testing.T) {
	enc := func(m *messages.Message) []byte {
		b, err := (transport.Codec{}).Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	own := enc(&messages.Message{ClusterId: 7, From: 2, To: 1, Term: 3})
	// A payload claiming from=2 first, then from=1: proto reads from=1.
	dup := &messages.Envelope{Version: 1, Payload: append(enc2(t, &messages.Message{ClusterId: 7, From: 2}), 0x18, 0x01)}
	dupBytes, _ := proto.Marshal(dup)
	cases := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"own", own, true},
		{"forged from", enc(&messages.Message{ClusterId: 7, From: 1, To: 1}), false},
		{"other cluster", enc(&messages.Message{ClusterId: 8, From: 2, To: 1}), false},
		{"duplicate from, last wins", dupBytes, false},
		{"garbage", []byte{0x12, 0xff}, false},
	}
	id := []Identity{{ClusterID: 7, NodeID: 2}, {ClusterID: 7, NodeID: 5}}
	for _, c := range cases {
		b := &premote.MessageBatch{TypeNames: []string{envelopeType}, Targets: []*actor.PID{{Id: testReceiver}},
			Envelopes: []*premote.MessageEnvelope{{MessageData: c.data}}}
		bad, forged := filterBatch(b, isTestReceiver, id)
		if got := len(b.Envelopes) == 1; got != c.ok || bad != 0 || forged != len(b.Envelopes)^1 {
			t.Errorf("%s: kept %d, bad %d, forged %d", c.name, len(b.Envelopes), bad, forged)
		}
	}
}

func enc2(t *testing.T, m *messages.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSplitBatch: a batch over the limit is cut into batches under it, in
// order, each with the lookup tables.
func TestSplitBatch(t *testing.T) {
	b := &premote.MessageBatch{TypeNames: []string{envelopeType}, Targets: []*actor.PID{{Address: "a:1", Id: testReceiver}}}
	for i := range 10 {
		b.Envelopes = append(b.Envelopes, &premote.MessageEnvelope{MessageData: make([]byte, 300+i)})
	}
	limit := 1000
	parts := splitBatch(b, limit)
	if len(parts) < 4 {
		t.Fatalf("%d parts", len(parts))
	}
	var n int
	for _, p := range parts {
		rm := &premote.RemoteMessage{MessageType: &premote.RemoteMessage_MessageBatch{MessageBatch: p}}
		if s := proto.Size(rm); s > limit {
			t.Errorf("part of %d bytes over the limit %d", s, limit)
		}
		for _, e := range p.Envelopes {
			if len(e.MessageData) != 300+n {
				t.Fatalf("envelope %d out of order", n)
			}
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d envelopes after splitting", n)
	}
}

// fakeStream is a server stream with a context and nothing else.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }

// TestGuardRecoversPanics: a panic in the stream handler is recovered,
// counted and turned into an Internal error, and a stream other than
// Receive never reaches its handler.
func TestGuardRecoversPanics(t *testing.T) {
	h := &Host{cfg: DefaultConfig()}
	h.cfg.ensureDefaults()
	ss := fakeStream{ctx: context.Background()}
	err := h.guardStream(nil, ss, &grpc.StreamServerInfo{FullMethod: receiveMethod}, func(any, grpc.ServerStream) error {
		panic("implement me")
	})
	if status.Code(err) != codes.Internal || h.recovered.Load() != 1 {
		t.Fatalf("err %v, recovered %d", err, h.recovered.Load())
	}
	err = h.guardStream(nil, ss, &grpc.StreamServerInfo{FullMethod: "/remote.Remoting/Other"}, func(any, grpc.ServerStream) error {
		t.Fatal("the handler of an unknown stream ran")
		return nil
	})
	if status.Code(err) != codes.Unimplemented || h.refusedCalls.Load() != 1 {
		t.Fatalf("err %v, refused %d", err, h.refusedCalls.Load())
	}
}
