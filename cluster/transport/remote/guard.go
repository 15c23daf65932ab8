package remote

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	premote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

// envelopeType is the only type name the receiver accepts.
var envelopeType = string(proto.MessageName((*messages.Envelope)(nil)))

// receiveMethod is the only RPC of protoactor's Remoting service the
// transport uses: the bidirectional stream endpoint writers open.
const receiveMethod = "/remote.Remoting/Receive"

// batchOverhead bounds what a gRPC message adds around one envelope of
// MaxMessageSize bytes: the batch's type-name, target and sender tables
// and the framing. The gRPC receive limit is MaxMessageSize+batchOverhead,
// and outbound batches are split to stay under it (see splitStream).
const batchOverhead = 64 << 10

// Refusal causes, as logged and counted.
const (
	causeRPC         = "unsupported RPC"
	causeCompression = "compressed stream"
	causeOversized   = "gRPC message over the size limit"
	causeIdentity    = "certificate without a node identity"
	causeForged      = "sender does not match its certificate"
	causePanic       = "panic in the gRPC handler"
)

// refuseUnary is the gRPC unary interceptor: the transport uses no unary
// RPC, and protoactor implements its two (ListProcesses,
// GetProcessDiagnostics) as panic("implement me"), which would crash the
// process. Every unary call is refused with Unimplemented, counted and
// logged; the handler never runs.
func (h *Host) refuseUnary(ctx context.Context, _ any, info *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
	h.refusedCalls.Add(1)
	h.refusal(ctx, causeRPC, "method", info.FullMethod)
	return nil, status.Errorf(codes.Unimplemented, "remote: %s is not served", info.FullMethod)
}

// guardStream is the gRPC stream interceptor in front of protoactor's
// endpoint reader. It refuses every stream but Receive, and compressed
// streams (before a message is read, so nothing is inflated); it binds the
// stream to the node identity in the peer's certificate under mutual TLS;
// and it filters every batch read (see guardedStream). A panic in the
// handler's goroutine is recovered, counted and logged as a last line of
// defence.
func (h *Host) guardStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	ctx := ss.Context()
	if info.FullMethod != receiveMethod {
		h.refusedCalls.Add(1)
		h.refusal(ctx, causeRPC, "method", info.FullMethod)
		return status.Errorf(codes.Unimplemented, "remote: %s is not served", info.FullMethod)
	}
	if c := recvCompression(ctx); c != "" && c != "identity" {
		h.refusedCompression.Add(1)
		h.refusal(ctx, causeCompression, "encoding", c)
		return status.Errorf(codes.Unimplemented, "remote: compression %q is refused", c)
	}
	gs := &guardedStream{ServerStream: ss, h: h}
	if h.bindIdentity {
		ids, err := h.peerIdentity(ctx)
		if err != nil {
			h.refusedIdentity.Add(1)
			h.refusal(ctx, causeIdentity, "error", err)
			return status.Errorf(codes.PermissionDenied, "remote: %v", err)
		}
		gs.ids = ids
	}
	defer func() {
		if r := recover(); r != nil {
			h.recovered.Add(1)
			h.refusal(ctx, causePanic, "panic", fmt.Sprint(r))
			err = status.Error(codes.Internal, "remote: internal error")
		}
	}()
	return handler(srv, gs)
}

// recvCompression returns the grpc-encoding of the inbound stream.
func recvCompression(ctx context.Context) string {
	if s, ok := grpc.ServerTransportStreamFromContext(ctx).(interface{ RecvCompress() string }); ok {
		return s.RecvCompress()
	}
	return ""
}

// peerIdentity maps the peer's verified certificate to node identities.
func (h *Host) peerIdentity(ctx context.Context) ([]Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errors.New("no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil, errors.New("no peer certificate")
	}
	return h.cfg.PeerIdentity(ti.State.PeerCertificates[0])
}

type guardedStream struct {
	grpc.ServerStream
	h   *Host
	ids []Identity // the sender's certificate identities; nil when not bound
}

// RecvMsg filters each batch (see filterBatch); an over-limit gRPC message
// ends the stream (gRPC refuses it from its length prefix, before reading
// it) and is counted.
func (s *guardedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		if status.Code(err) == codes.ResourceExhausted {
			s.h.oversized.Add(1)
			s.h.refusal(s.Context(), causeOversized, "error", err)
		}
		return err
	}
	if rm, ok := m.(*premote.RemoteMessage); ok {
		if b := rm.GetMessageBatch(); b != nil {
			bad, forged := filterBatch(b, s.h.isReceiver, s.ids)
			s.h.undecodable.Add(uint64(bad))
			if forged > 0 {
				s.h.forged.Add(uint64(forged))
				s.h.refusal(s.Context(), causeForged, "dropped", forged, "certificate", fmt.Sprint(s.ids))
			}
		}
	}
	return nil
}

// filterBatch keeps in b only the envelopes protoactor can process safely
// and that carry an Envelope to a local receiver; with ids non-nil, also
// only those whose Raft message's cluster id and sender are one of ids. It
// returns how many it removed as bad and as forged.
func filterBatch(b *premote.MessageBatch, isReceiver func(string) bool, ids []Identity) (bad, forged int) {
	kept := b.Envelopes[:0]
	for _, e := range b.Envelopes {
		switch {
		case e == nil || !envelopeOK(b, e, isReceiver):
			bad++
		case ids != nil && !sentBy(e.MessageData, ids):
			forged++
		default:
			kept = append(kept, e)
		}
	}
	clear(b.Envelopes[len(kept):])
	b.Envelopes = kept
	return bad, forged
}

func envelopeOK(b *premote.MessageBatch, e *premote.MessageEnvelope, isReceiver func(string) bool) bool {
	switch {
	case e.SerializerId != 0, // protobuf only
		e.TypeId < 0 || int(e.TypeId) >= len(b.TypeNames),
		e.Target < 0 || int(e.Target) >= len(b.Targets),
		e.Sender < 0 || int(e.Sender) > len(b.Senders):
		return false
	}
	target := b.Targets[e.Target]
	return b.TypeNames[e.TypeId] == envelopeType && target != nil && isReceiver(target.Id)
}

// sentBy reports whether the marshalled Envelope env carries a Raft
// message from one of ids: its cluster_id and from fields are an
// identity's. It reads the fields in place, the way proto.Unmarshal would
// (the last occurrence wins); bytes it cannot parse do not match.
func sentBy(env []byte, ids []Identity) bool {
	payload, ok := lastBytesField(env, 2) // Envelope.payload
	if !ok {
		return false
	}
	var cluster, from uint64
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return false
		}
		payload = payload[n:]
		if (num == 2 || num == 3) && typ == protowire.VarintType { // cluster_id, from
			v, n := protowire.ConsumeVarint(payload)
			if n < 0 {
				return false
			}
			if num == 2 {
				cluster = v
			} else {
				from = v
			}
			payload = payload[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, payload)
		if n < 0 {
			return false
		}
		payload = payload[n:]
	}
	return containsIdentity(ids, cluster, from)
}

func containsIdentity(ids []Identity, cluster, node uint64) bool {
	for _, id := range ids {
		if id.ClusterID == cluster && id.NodeID == node {
			return true
		}
	}
	return false
}

// lastBytesField returns the last occurrence of bytes field num in b.
func lastBytesField(b []byte, num protowire.Number) (v []byte, ok bool) {
	ok = true
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, false
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			val, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return nil, false
			}
			v, b = val, b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return nil, false
		}
		b = b[l:]
	}
	return v, ok
}

// isOversized reports whether err is a size-limit error.
func isOversized(err error) bool { return errors.Is(err, transport.ErrOversized) }

// refusal logs a refused input at Warn, at most once per refusalLogEvery
// for each peer and cause, so a hostile peer cannot flood the log.
func (h *Host) refusal(ctx context.Context, cause string, attrs ...any) {
	who := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		who = p.Addr.String()
		if host, _, err := net.SplitHostPort(who); err == nil {
			who = host
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			who += " (" + certName(ti.State.PeerCertificates[0]) + ")"
		}
	}
	if !h.logLimit.allow(who+"\x00"+cause, time.Now()) {
		return
	}
	h.cfg.Logger.Warn("remote: refused inbound input", append([]any{"addr", h.addr, "peer", who, "cause", cause}, attrs...)...)
}

// certName names a certificate in logs: its node identity URI if any,
// else its subject.
func certName(c *x509.Certificate) string {
	for _, u := range c.URIs {
		if u.Scheme == IdentityScheme {
			return u.String()
		}
	}
	return c.Subject.String()
}

// refusalLogEvery is how often one peer's refusals of one cause are
// logged.
const refusalLogEvery = time.Minute

// logLimiter allows one log line per key per refusalLogEvery. It keeps at
// most maxLogKeys keys (forgetting all of them when full), so a peer cycling
// addresses cannot grow it without bound.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const maxLogKeys = 4096

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < refusalLogEvery {
		return false
	}
	if l.last == nil || len(l.last) >= maxLogKeys {
		l.last = map[string]time.Time{}
	}
	l.last[key] = now
	return true
}

// splitStream is the client side of the receive limit: protoactor's
// endpoint writer puts up to a thousand envelopes into one gRPC message,
// which the peer would refuse over MaxMessageSize+batchOverhead. It sends
// such a batch as several consecutive messages, in order, each under the
// limit.
type splitStream struct {
	grpc.ClientStream
	limit int
	h     *Host
}

func (h *Host) splitBatches(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &splitStream{ClientStream: cs, limit: h.cfg.MaxMessageSize + batchOverhead, h: h}, nil
}

func (s *splitStream) SendMsg(m any) error {
	rm, ok := m.(*premote.RemoteMessage)
	b := rm.GetMessageBatch()
	if !ok || b == nil || len(b.Envelopes) < 2 || proto.Size(rm) <= s.limit {
		err := s.ClientStream.SendMsg(m)
		if err == nil && b != nil {
			s.h.countBatch(b.Envelopes)
		}
		return err
	}
	for _, part := range splitBatch(b, s.limit) {
		if err := s.ClientStream.SendMsg(&premote.RemoteMessage{MessageType: &premote.RemoteMessage_MessageBatch{MessageBatch: part}}); err != nil {
			return err
		}
		s.h.countBatch(part.Envelopes)
	}
	return nil
}

// splitBatch cuts b into batches of at most limit encoded bytes each (a
// batch of one envelope may exceed it), sharing b's lookup tables.
func splitBatch(b *premote.MessageBatch, limit int) []*premote.MessageBatch {
	tables := proto.Size(&premote.RemoteMessage{MessageType: &premote.RemoteMessage_MessageBatch{MessageBatch: &premote.MessageBatch{
		TypeNames: b.TypeNames, Targets: b.Targets, Senders: b.Senders}}}) + 16
	var out []*premote.MessageBatch
	cur := &premote.MessageBatch{TypeNames: b.TypeNames, Targets: b.Targets, Senders: b.Senders}
	size := tables
	for _, e := range b.Envelopes {
		n := protowire.SizeTag(3) + protowire.SizeBytes(proto.Size(e))
		if len(cur.Envelopes) > 0 && size+n > limit {
			out = append(out, cur)
			cur = &premote.MessageBatch{TypeNames: b.TypeNames, Targets: b.Targets, Senders: b.Senders}
			size = tables
		}
		cur.Envelopes = append(cur.Envelopes, e)
		size += n
	}
	return append(out, cur)
}
