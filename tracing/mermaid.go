package tracing

import (
	"fmt"
	"slices"
	"strings"

	"time"

	"go.opentelemetry.io/otel/attribute"
)

// DiagramSpan is what RenderMermaid draws of one span. tracingtest.RenderMermaid
// builds them from the SDK's recorded spans, so this package needs no SDK.
type DiagramSpan struct {
	Name       string
	Attributes []attribute.KeyValue
	Start      time.Time
	// Open: the span has not ended.
	Open bool
	// Failed: the span's status is Error, with Description.
	Failed      bool
	Description string
}

// RenderMermaid draws spans as a Mermaid sequence diagram of the messages between
// nodes, ordered by start time. Tests call tracingtest.RenderMermaid with the spans an
// SDK recorder holds.
//
// A participant is drawn for every raft.node_id and raft.peer. A span that sends a
// message (replicate, prevote, vote, vote.response, snapshot.send) is an arrow from
// its node to its peer; every other span is a note over its node. Spans without
// raft.node_id are listed as comments. Unended spans are marked "(open)", failed
// ones "FAILED: description".
//
//	sequenceDiagram
//	    participant n1
//	    participant n2
//	    Note over n1: propose t3
//	    n1->>n2: append [5..7] t3
//	    Note over n2: follower.append [5..7] t3
func RenderMermaid(spans []DiagramSpan) string {
	type event struct {
		span DiagramSpan
		a    spanAttrs
		seq  int
	}
	events := make([]event, 0, len(spans))
	var nodes []int64
	for i, s := range spans {
		a := readAttrs(s.Attributes)
		if a.hasNode {
			nodes = append(nodes, a.node)
		}
		if a.peer != 0 {
			nodes = append(nodes, a.peer)
		}
		events = append(events, event{span: s, a: a, seq: i})
	}
	slices.SortStableFunc(events, func(x, y event) int {
		return x.span.Start.Compare(y.span.Start)
	})
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)

	var b strings.Builder
	b.WriteString("sequenceDiagram\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "    participant n%d\n", n)
	}
	for _, e := range events {
		label := mermaidText(e.a.label(e.span.Name))
		if e.span.Open {
			label += " (open)"
		}
		if e.span.Failed {
			label += " FAILED: " + mermaidText(e.span.Description)
		}
		switch {
		case !e.a.hasNode:
			fmt.Fprintf(&b, "    %%%% %s (no raft.node_id)\n", label)
		case e.a.peer != 0 && isSend(e.span.Name):
			fmt.Fprintf(&b, "    n%d->>n%d: %s\n", e.a.node, e.a.peer, label)
		default:
			fmt.Fprintf(&b, "    Note over n%d: %s\n", e.a.node, label)
		}
	}
	return b.String()
}

func isSend(name string) bool {
	switch name {
	case SpanReplicate, SpanPreVote, SpanVote, SpanVoteResponse, SpanSnapshotSend:
		return true
	}
	return false
}

type spanAttrs struct {
	node                        int64
	hasNode                     bool
	peer, term, first, last, ix int64
	batch                       int64
	reason, result, role        string
}

func readAttrs(kvs []attribute.KeyValue) spanAttrs {
	var a spanAttrs
	for _, kv := range kvs {
		switch kv.Key {
		case AttrNodeID:
			a.node, a.hasNode = kv.Value.AsInt64(), true
		case AttrPeer:
			a.peer = kv.Value.AsInt64()
		case AttrTerm:
			a.term = kv.Value.AsInt64()
		case AttrIndexFirst:
			a.first = kv.Value.AsInt64()
		case AttrIndexLast:
			a.last = kv.Value.AsInt64()
		case AttrIndex:
			a.ix = kv.Value.AsInt64()
		case AttrBatchSize:
			a.batch = kv.Value.AsInt64()
		case AttrReason:
			a.reason = kv.Value.AsString()
		case AttrResult:
			a.result = kv.Value.AsString()
		case AttrRole:
			a.role = kv.Value.AsString()
		}
	}
	return a
}

// label is the short text of a span: a verb from its name, then its log range or
// index, term, result and reason.
func (a spanAttrs) label(name string) string {
	verb := strings.TrimPrefix(name, "raft.")
	switch name {
	case SpanReplicate:
		verb = "append"
	case SpanPreVote:
		verb = "pre-vote?"
	case SpanVote:
		verb = "vote?"
	case SpanVoteResponse:
		verb = "vote"
	}
	parts := []string{verb}
	switch {
	case a.first != 0 && a.first == a.last:
		parts = append(parts, fmt.Sprintf("[%d]", a.first))
	case a.first != 0 || a.last != 0:
		parts = append(parts, fmt.Sprintf("[%d..%d]", a.first, a.last))
	}
	if a.ix != 0 {
		parts = append(parts, fmt.Sprint(a.ix))
	}
	if a.term != 0 {
		parts = append(parts, fmt.Sprintf("t%d", a.term))
	}
	if a.result != "" {
		parts = append(parts, a.result)
	}
	if a.role != "" {
		parts = append(parts, a.role)
	}
	if a.batch > 1 {
		parts = append(parts, fmt.Sprintf("x%d", a.batch))
	}
	if a.reason != "" {
		parts = append(parts, "("+a.reason+")")
	}
	return strings.Join(parts, " ")
}

// mermaidText keeps s on one line and away from Mermaid's statement separator (;),
// entity codes (#) and comment marker (%%).
var mermaidEscaper = strings.NewReplacer("\n", " ", "\r", " ", ";", ",", "#", "no.", "%%", "%")

func mermaidText(s string) string { return mermaidEscaper.Replace(s) }
