package actors_test

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/tracingtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// recorded is a view of the ended spans of a test: who is whose parent, and
// in which order they ended (under synctest every span of a step has the
// same fake timestamps, so "a parent lasts until its child ended" is checked
// as the order in which the spans ended).
type recorded struct {
	all   []sdktrace.ReadOnlySpan
	byID  map[trace.SpanID]sdktrace.ReadOnlySpan
	ended map[trace.SpanID]int
}

func record(rec *tracetest.SpanRecorder) recorded {
	r := recorded{all: rec.Ended(), byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}, ended: map[trace.SpanID]int{}}
	for i, s := range r.all {
		r.byID[s.SpanContext().SpanID()] = s
		r.ended[s.SpanContext().SpanID()] = i
	}
	return r
}

func (r recorded) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.all {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func (r recorded) parent(s sdktrace.ReadOnlySpan) (sdktrace.ReadOnlySpan, bool) {
	p, ok := r.byID[s.Parent().SpanID()]
	return p, ok
}

// children returns the spans called name whose parent is p.
func (r recorded) children(p sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.named(name) {
		if s.Parent().SpanID() == p.SpanContext().SpanID() {
			out = append(out, s)
		}
	}
	return out
}

func nodeOf(s sdktrace.ReadOnlySpan) int64 { return attrOf(s, tracing.AttrNodeID).AsInt64() }

func attrOf(s sdktrace.ReadOnlySpan, k attribute.Key) attribute.Value {
	for _, kv := range s.Attributes() {
		if kv.Key == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func describe(s sdktrace.ReadOnlySpan) string {
	return fmt.Sprintf("%s on node %d", s.Name(), nodeOf(s))
}

// problems collects what a check found wrong.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// child checks that s is a child of parent, of kind, and ended before it
// (the parent lasts until the child is done).
func (p *problems) child(r recorded, s, parent sdktrace.ReadOnlySpan, kind trace.SpanKind) {
	if s.Parent().SpanID() != parent.SpanContext().SpanID() {
		got := "none"
		if ps, ok := r.parent(s); ok {
			got = describe(ps)
		}
		p.addf("%s: parent %s, want %s", describe(s), got, describe(parent))
	}
	if s.SpanKind() != kind {
		p.addf("%s: kind %v, want %v", describe(s), s.SpanKind(), kind)
	}
	if r.ended[s.SpanContext().SpanID()] > r.ended[parent.SpanContext().SpanID()] {
		p.addf("%s ended after its parent %s", describe(s), describe(parent))
	}
}

func (p *problems) result(s sdktrace.ReadOnlySpan, want string) {
	if got := attrOf(s, tracing.AttrResult).AsString(); got != want {
		p.addf("%s: raft.result %q, want %q", describe(s), got, want)
	}
}

// sameTraceLinks reports links that point into the span's own trace: the
// parent already ties it there, a link is for other traces.
func (p *problems) sameTraceLinks(r recorded) {
	for _, s := range r.all {
		for _, l := range s.Links() {
			if l.SpanContext.TraceID() == s.SpanContext().TraceID() {
				p.addf("%s links to a span of its own trace", describe(s))
			}
		}
	}
}

// tracedCluster is a three-node cluster whose spans rec records (saved as a
// Mermaid diagram if the test fails).
func tracedCluster(t *testing.T) (*cluster, *tracetest.SpanRecorder) {
	tp, rec := tracingtest.NewProvider(t)
	return newClusterWith(t, 3, func(c *cluster) { c.tp = tp }), rec
}

// eventually polls check (fake time under synctest) until it finds nothing
// wrong, and fails with what it last found after 30 s.
func eventually(t *testing.T, rec *tracetest.SpanRecorder, check func(r recorded) problems) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := check(record(rec))
		if len(p) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, m := range p {
				t.Error(m)
			}
			t.FailNow()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One proposal is one trace whose root lasts until the proposer is
// answered: the leader's append, persist, commit and apply inside it; one
// raft.replicate per follower (client) lasting until that follower's
// acknowledgement, holding the follower's raft.follower.append (server),
// which holds the follower's persist and apply. (The acknowledgement of a
// follower the quorum did not need may arrive after the answer: its
// replicate span may end after the root.)
func TestProposalIsOneTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := tracedCluster(t)
		lead := c.waitLeader()
		res, err := c.propose(lead, "traced")
		if err != nil {
			t.Fatal(err)
		}
		c.waitApplied(1, c.ids...)
		eventually(t, rec, func(r recorded) (p problems) {
			var root sdktrace.ReadOnlySpan
			for _, s := range r.named(tracing.SpanPropose) {
				if attrOf(s, tracing.AttrIndex).AsInt64() == int64(res.Index) {
					root = s
				}
			}
			if root == nil {
				return problems{"no ended propose span"}
			}
			if root.Parent().IsValid() || root.SpanKind() != trace.SpanKindServer || nodeOf(root) != int64(lead) {
				p.addf("propose: parent %v kind %v node %d, want a server root on leader %d", root.Parent().SpanID(), root.SpanKind(), nodeOf(root), lead)
			}
			p.result(root, "applied")
			for _, name := range []string{tracing.SpanLeaderAppend, tracing.SpanPersist, tracing.SpanCommit, tracing.SpanApply} {
				kids := r.children(root, name)
				if len(kids) != 1 {
					p.addf("%d %s children of propose, want 1 (the leader's)", len(kids), name)
					continue
				}
				p.child(r, kids[0], root, trace.SpanKindInternal)
			}
			reps := r.children(root, tracing.SpanReplicate)
			peers := map[int64]bool{}
			for _, rep := range reps {
				peer := attrOf(rep, tracing.AttrPeer).AsInt64()
				peers[peer] = true
				// The slower follower's acknowledgement may arrive after the
				// proposer was answered: a replicate span may outlast the root.
				if rep.Parent().SpanID() != root.SpanContext().SpanID() || rep.SpanKind() != trace.SpanKindClient {
					p.addf("replicate to %d: kind %v, want a client child of propose", peer, rep.SpanKind())
				}
				p.result(rep, "acked")
				fas := r.children(rep, tracing.SpanFollowerAppend)
				if len(fas) != 1 || nodeOf(fas[0]) != peer {
					p.addf("replicate to %d holds %d follower.append spans, want 1 on node %d", peer, len(fas), peer)
					continue
				}
				fa := fas[0]
				// A server span ends before the client span it answers.
				p.child(r, fa, rep, trace.SpanKindServer)
				p.result(fa, "acked")
				for _, name := range []string{tracing.SpanPersist, tracing.SpanApply} {
					if k := r.children(fa, name); len(k) != 1 || nodeOf(k[0]) != peer {
						p.addf("follower.append on %d holds %d %s spans of its own, want 1", peer, len(k), name)
					}
				}
			}
			if len(peers) != 2 {
				p.addf("replicate spans to peers %v, want both followers", peers)
			}
			p.sameTraceLinks(r)
			return p
		})
	})
}

// An election is one trace: raft.election on the winner, its attributes
// describing the end (leader, the final term, won); a raft.prevote and a
// raft.vote per peer asked (clients), each granted one holding that voter's
// raft.vote.response (server), which ended before it. No pre-vote or vote
// span is a root of its own.
func TestElectionIsOneTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := tracedCluster(t)
		lead := c.waitLeader()
		term := c.status(lead).Term
		eventually(t, rec, func(r recorded) (p problems) {
			var won sdktrace.ReadOnlySpan
			for _, s := range r.named(tracing.SpanElection) {
				if nodeOf(s) == int64(lead) && attrOf(s, tracing.AttrResult).AsString() == "won" {
					won = s
				}
			}
			if won == nil {
				return problems{fmt.Sprintf("no won election span on leader %d", lead)}
			}
			if won.Parent().IsValid() || won.SpanKind() != trace.SpanKindInternal {
				p.addf("election: parent %v kind %v, want an internal root", won.Parent().SpanID(), won.SpanKind())
			}
			if got := attrOf(won, tracing.AttrRole).AsString(); got != "leader" {
				p.addf("election raft.role %q, want the end state leader", got)
			}
			if got := attrOf(won, tracing.AttrTerm).AsInt64(); got != int64(term) {
				p.addf("election raft.term %d, want the final term %d", got, term)
			}
			if attrOf(won, tracing.AttrReason).AsString() == "" {
				p.addf("election without raft.reason")
			}
			for _, name := range []string{tracing.SpanPreVote, tracing.SpanVote} {
				granted := 0
				for _, req := range r.children(won, name) {
					// A request the win no longer needed stays open for its
					// answer: it may end after the election.
					if req.SpanKind() != trace.SpanKindClient {
						p.addf("%s: kind %v, want client", describe(req), req.SpanKind())
					}
					if attrOf(req, tracing.AttrResult).AsString() == "granted" {
						granted++
						resp := r.children(req, tracing.SpanVoteResponse)
						if len(resp) != 1 || nodeOf(resp[0]) != attrOf(req, tracing.AttrPeer).AsInt64() {
							p.addf("granted %s holds %d vote.response spans, want the voter's", name, len(resp))
							continue
						}
						p.child(r, resp[0], req, trace.SpanKindServer)
						p.result(resp[0], "granted")
					}
				}
				if granted == 0 {
					p.addf("no granted %s in the winning election", name)
				}
			}
			for _, s := range r.all {
				switch s.Name() {
				case tracing.SpanPreVote, tracing.SpanVote, tracing.SpanVoteResponse:
					if _, ok := r.parent(s); !ok {
						p.addf("%s has no recorded parent: an orphan trace", describe(s))
					}
				}
			}
			return p
		})
	})
}

// wonCheckTransport checks, when a leader's first append or heartbeat of
// a term leaves, that the election span that made it leader has ended.
type wonCheckTransport struct {
	transport.Transport
	rec  *tracetest.SpanRecorder
	mu   *sync.Mutex
	seen map[[2]uint64]bool
	bad  *[]string
}

func (w wonCheckTransport) Send(to transport.Peer, m *messages.Message) error {
	if m.Type == messages.MessageType_MSG_APPEND || m.Type == messages.MessageType_MSG_HEARTBEAT {
		w.mu.Lock()
		key := [2]uint64{m.From, m.Term}
		if !w.seen[key] {
			w.seen[key] = true
			won := false
			for _, s := range w.rec.Ended() {
				if s.Name() == tracing.SpanElection && nodeOf(s) == int64(m.From) &&
					attrOf(s, tracing.AttrTerm).AsInt64() == int64(m.Term) && attrOf(s, tracing.AttrResult).AsString() == "won" {
					won = true
				}
			}
			if !won {
				*w.bad = append(*w.bad, fmt.Sprintf("node %d sent %v of term %d before its election span ended", m.From, m.Type, m.Term))
			}
		}
		w.mu.Unlock()
	}
	return w.Transport.Send(to, m)
}

// A node ends its election span (won) before its first message as leader
// leaves: a peer that hears it may end a span the election is a child of
// (raft.transfer ends when the transferring leader hears of the new one),
// and a parent must not end before its child. Checked at every new
// leader's first append or heartbeat, through an election and 20
// transfers (the order it guards against is a race between actors: each
// transfer is one more chance to lose it).
func TestElectionEndsBeforeTheLeaderSpeaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var bad []string
		seen := map[[2]uint64]bool{}
		tp, rec := tracingtest.NewProvider(t)
		c := newClusterWith(t, 3, func(c *cluster) {
			c.tp = tp
			c.configure = func(id uint64, cfg *actors.Config) {
				cfg.Transport = wonCheckTransport{Transport: cfg.Transport, rec: rec, mu: &mu, seen: seen, bad: &bad}
			}
		})
		lead := c.waitLeader()
		const transfers = 20
		for i := range transfers {
			to := c.others(lead)[i%2]
			res, err := actors.Request[*actors.TransferLeadershipResponse](c.sys.Root, c.node(lead), &actors.TransferLeadership{To: to}, 5*time.Second)
			if err != nil || res.Leader != to {
				t.Fatalf("transfer to %d: %+v %v", to, res, err)
			}
			lead = c.waitLeader()
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < transfers+1 {
			t.Errorf("saw the first messages of %d leader terms, want %d", len(seen), transfers+1)
		}
		for _, b := range bad {
			t.Error(b)
		}
	})
}
