package remote_test

import (
	"context"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/remote"
	"github.com/flotilla-raft/flotilla/messages"
)

// TestHostileBatchesDoNotCrash speaks protoactor's wire protocol directly
// and sends batches that crash an unguarded protoactor receiver (an
// unregistered type name, out-of-range indexes) or would reach other actors
// (a Stop for the receiver, a message to the activator). The node must
// survive, count them, and still deliver the valid envelope in the batch.
func TestHostileBatchesDoNotCrash(t *testing.T) {
	n1 := spawnNode(t, insecureConfig(1))
	in1 := start(t, n1)

	conn, err := grpc.NewClient(n1.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	stream, err := premote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&premote.RemoteMessage{MessageType: &premote.RemoteMessage_ConnectRequest{
		ConnectRequest: &premote.ConnectRequest{ConnectionType: &premote.ConnectRequest_ServerConnection{
			ServerConnection: &premote.ServerConnection{SystemId: "hostile", Address: "127.0.0.1:1"}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("connect response: %v", err)
	}

	receiver := remote.ReceiverName("flotilla-raft", 0, 1)
	good, err := transport.Codec{}.Wrap(msg(2, 1, 7))
	if err != nil {
		t.Fatal(err)
	}
	goodBytes, _ := proto.Marshal(good)
	garbage, _ := proto.Marshal(&messages.Envelope{Version: 1, Payload: []byte{0xff, 0xff}})
	stop, _ := proto.Marshal(&actor.Stop{})
	batch := &premote.MessageBatch{
		TypeNames: []string{"no.such.Type", string(proto.MessageName(good)), "actor.Stop"},
		Targets:   []*actor.PID{{Address: n1.Addr(), Id: receiver}, {Address: n1.Addr(), Id: "activator"}},
		Envelopes: []*premote.MessageEnvelope{
			{TypeId: 0, Target: 0, MessageData: []byte("x")}, // unregistered type
			{TypeId: 9, Target: 0},                           // type index out of range
			{TypeId: 1, Target: 9},                           // target index out of range
			{TypeId: 2, Target: 0, MessageData: stop},        // Stop for the receiver
			{TypeId: 1, Target: 1, MessageData: goodBytes},   // to another actor
			{TypeId: 1, Target: 0, MessageData: garbage},     // undecodable payload
			{TypeId: 1, Target: 0, MessageData: goodBytes},   // the valid one
		},
	}
	if err := stream.Send(&premote.RemoteMessage{MessageType: &premote.RemoteMessage_MessageBatch{MessageBatch: batch}}); err != nil {
		t.Fatal(err)
	}
	m := expect(t, in1, 2, "the valid envelope of the hostile batch")
	if m.GetIndex() != 7 {
		t.Fatalf("delivered %v", m)
	}
	waitUntil(t, "node 1 to count the 6 bad envelopes", func() bool { return n1.Stats().DroppedUndecodable == 6 })

	// The receiver was not stopped: a normal peer still gets through.
	n2 := spawnNode(t, insecureConfig(2))
	start(t, n2)
	if err := n2.Send(transport.Peer{ID: 1, Address: n1.Addr()}, msg(2, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if m := expect(t, in1, 2, "a normal message after the hostile batch"); m.GetIndex() != 8 {
		t.Fatalf("delivered %v", m)
	}
}
