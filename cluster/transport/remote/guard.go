package remote

import (
	"errors"

	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// envelopeType is the only type name the receiver accepts.
var envelopeType = string(proto.MessageName((*messages.Envelope)(nil)))

// guardStream is a gRPC stream interceptor in front of protoactor's
// endpoint reader. protoactor trusts every batch it reads: an unregistered
// type name, an out-of-range type, target or sender index, or an unknown
// serializer id panics the receiving process, and a system message (Stop,
// Watch...) would reach our actors. The guard removes from each batch
// every envelope that is not a protobuf Envelope for this node's receiver
// actor, and counts it as undecodable, so a faulty or hostile peer that
// passed TLS can neither crash nor steer the node.
func (t *Transport) guardStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &guardedStream{ServerStream: ss, t: t})
}

type guardedStream struct {
	grpc.ServerStream
	t *Transport
}

func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if rm, ok := m.(*premote.RemoteMessage); ok {
		if b := rm.GetMessageBatch(); b != nil {
			s.t.undecodable.Add(uint64(filterBatch(b, s.t.receiverName())))
		}
	}
	return nil
}

func (t *Transport) receiverName() string {
	return ReceiverName(t.cfg.ReceiverPrefix, t.cfg.ID)
}

// filterBatch keeps in b only the envelopes protoactor can process safely
// and that carry an Envelope to the receiver; it returns how many it
// removed.
func filterBatch(b *premote.MessageBatch, receiver string) int {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		if e != nil && envelopeOK(b, e, receiver) {
			kept = append(kept, e)
		}
	}
	removed := len(b.Envelopes) - len(kept)
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return removed
}

func envelopeOK(b *premote.MessageBatch, e *premote.MessageEnvelope, receiver string) bool {
	switch {
	case e.SerializerId != 0, // protobuf only
		e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames),
		e.Target < 0 || int(e.Target) >= len(b.Targets),
		e.Sender < 0 || int(e.Sender) > len(b.Senders):
		return false
	}
	target := b.Targets[e.Target]
	return b.TypeNames[e.TypeId] == envelopeType && target != nil && target.Id == receiver
}

// isOversized reports whether err is a size-limit error.
func isOversized(err error) bool { return errors.Is(err, transport.ErrOversized) }
