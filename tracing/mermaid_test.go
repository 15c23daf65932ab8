package tracing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/tracingtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestRenderMermaid(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	span := func(name string, start int, kvs ...attribute.KeyValue) tracetest.SpanStub {
		return tracetest.SpanStub{Name: name, StartTime: at(start), EndTime: at(start + 1), Attributes: kvs}
	}
	node := tracing.AttrNodeID.Int64
	peer := tracing.AttrPeer.Int64
	term := tracing.AttrTerm.Int64
	first, last := tracing.AttrIndexFirst.Int64, tracing.AttrIndexLast.Int64

	// Given out of order: the diagram orders by start time.
	stubs := tracetest.SpanStubs{
		span(tracing.SpanVote, 40, node(3), peer(1), term(3), tracing.AttrResult.String("granted")),
		span(tracing.SpanReplicate, 20, node(1), peer(2), term(3), first(5), last(7)),
		span(tracing.SpanPropose, 10, node(1), term(3)),
		span(tracing.SpanReplicate, 21, node(1), peer(3), term(3), first(5), last(7)),
		span(tracing.SpanFollowerAppend, 30, node(3), peer(1), term(3), first(5), last(7)),
		span(tracing.SpanElection, 0, node(1), term(3), tracing.AttrReason.String("election-timeout;\nfast")),
		span(tracing.SpanVoteResponse, 1, node(2), peer(1), term(3), tracing.AttrResult.String("granted")),
		span(tracing.SpanApply, 50, node(2), first(5), last(5), tracing.AttrBatchSize.Int(3)),
		span("raft.unlabelled", 60),
	}
	failed := span(tracing.SpanPersist, 35, node(3), first(5), last(7))
	failed.Status = sdktrace.Status{Code: codes.Error, Description: "fsync: #EIO"}
	open := span(tracing.SpanCommit, 45, node(1), tracing.AttrIndex.Int64(7), term(3))
	open.EndTime = time.Time{}
	stubs = append(stubs, failed, open)

	got := tracingtest.RenderMermaid(stubs.Snapshots())
	want := `sequenceDiagram
    participant n1
    participant n2
    participant n3
    Note over n1: election t3 (election-timeout, fast)
    n2->>n1: vote t3 granted
    Note over n1: propose t3
    n1->>n2: append [5..7] t3
    n1->>n3: append [5..7] t3
    Note over n3: follower.append [5..7] t3
    Note over n3: persist [5..7] FAILED: fsync: no.EIO
    n3->>n1: vote? t3 granted
    Note over n1: commit 7 t3 (open)
    Note over n2: apply [5] x3
    %% unlabelled (no raft.node_id)
`
	if got != want {
		t.Fatalf("RenderMermaid =\n%s\nwant\n%s", got, want)
	}
}

func TestRenderMermaidEmpty(t *testing.T) {
	if got := tracingtest.RenderMermaid(nil); got != "sequenceDiagram\n" {
		t.Fatalf("RenderMermaid(nil) = %q", got)
	}
}

// TestFlowDiagram runs one proposal through three nodes' Tracers the way the node
// actor will, carrying trace context in messages and entries, and checks the span
// tree and the diagram.
func TestFlowDiagram(t *testing.T) {
	tp, rec := newRecorded(t)
	n1, n2 := tracing.NewTracer(tp, 1), tracing.NewTracer(tp, 2)
	const term = 2

	pctx, propose := n1.Start(context.Background(), tracing.SpanPropose, tracing.Attrs{Term: term})
	entry := &messages.Entry{Term: term, Index: 4, TraceParent: tracing.Inject(pctx)}
	actx, appendSpan := n1.Start(pctx, tracing.SpanLeaderAppend, tracing.Attrs{Term: term, First: 4, Last: 4})
	_, persist := n1.StartLinked(context.Background(), tracing.SpanPersist, tracing.Attrs{First: 4, Last: 4}, []string{tracing.Inject(actx)})
	persist.End()
	rctx, rep := n1.Start(actx, tracing.SpanReplicate, tracing.Attrs{Term: term, Peer: 2, First: 4, Last: 4})
	msg := &messages.Message{Type: messages.MessageType_MSG_APPEND, From: 1, To: 2, Term: term, Entries: []*messages.Entry{entry}, TraceParent: tracing.Inject(rctx)}
	rep.End()
	appendSpan.End()

	fctx, fa := n2.StartRemote(context.Background(), msg.TraceParent, tracing.SpanFollowerAppend, tracing.Attrs{Term: msg.Term, Peer: msg.From, First: 4, Last: 4})
	resp := &messages.Message{Type: messages.MessageType_MSG_APPEND_RESP, From: 2, To: 1, Term: term, Index: 4, TraceParent: tracing.Inject(fctx)}
	fa.End()

	_, commit := n1.StartLinked(context.Background(), tracing.SpanCommit, tracing.Attrs{Term: term, Index: resp.Index}, []string{resp.TraceParent})
	commit.End()
	for _, n := range []*tracing.Tracer{n1, n2} {
		_, apply := n.StartLinked(context.Background(), tracing.SpanApply, tracing.Attrs{First: 4, Last: 4}, []string{entry.TraceParent})
		apply.End()
	}
	propose.End()

	// Structure: follower.append is a child of replicate; apply spans link to propose.
	if p := one(t, rec, tracing.SpanFollowerAppend).Parent().SpanID(); p != rep.SpanContext().SpanID() {
		t.Errorf("follower.append parent = %v, want replicate %v", p, rep.SpanContext().SpanID())
	}
	for _, a := range byName(rec, tracing.SpanApply) {
		if l := a.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != propose.SpanContext().SpanID() {
			t.Errorf("apply links = %+v, want the proposal", l)
		}
	}

	d := tracingtest.RenderMermaid(rec.Ended())
	for _, line := range []string{"participant n1", "participant n2", "n1->>n2: append [4] t2", "Note over n2: follower.append [4] t2", "Note over n2: apply [4]"} {
		if !strings.Contains(d, line) {
			t.Errorf("diagram lacks %q:\n%s", line, d)
		}
	}
}
