package jaegertest

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-raft/flotilla/tracing"
)

// Connect returns a client of the query API of a Jaeger that is already running
// (queryURL such as http://localhost:16686), for Services, Traces and Trace. It
// starts and stops nothing.
func Connect(queryURL string) *Jaeger {
	return &Jaeger{query: strings.TrimPrefix(strings.TrimSuffix(queryURL, "/"), "http://"),
		client: &http.Client{Timeout: 10 * time.Second}}
}

// Tree prints tr as an indented tree: each span under its parent (CHILD_OF),
// children by start time, with the node that recorded it (raft.node_id of the
// span, else of its process, else the service name), and raft.peer, raft.index and
// the number of span links (FOLLOWS_FROM) when present:
//
//	raft.propose [node 1] index=3
//	  raft.leader.append [node 1] index=3
//	  raft.replicate [node 1] peer=2
//	    raft.follower.append [node 2] peer=1
func (tr Trace) Tree() string {
	children := map[string][]Span{}
	var roots []Span
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	for _, s := range tr.Spans {
		if p := s.Parent(); p != "" && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	byStart := func(ss []Span) {
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].StartTime < ss[j].StartTime })
	}
	var b strings.Builder
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		extra := ""
		if p, ok := s.Tag(string(tracing.AttrPeer)); ok {
			extra += " peer=" + tagText(p)
		}
		if i, ok := s.Tag(string(tracing.AttrIndex)); ok {
			extra += " index=" + tagText(i)
		}
		if n := len(s.Links()); n > 0 {
			extra += fmt.Sprintf(" links=%d", n)
		}
		fmt.Fprintf(&b, "%s%s [%s]%s\n", strings.Repeat("  ", depth), s.OperationName, tr.where(s), extra)
		kids := children[s.SpanID]
		byStart(kids)
		for _, k := range kids {
			walk(k, depth+1)
		}
	}
	byStart(roots)
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// where names the node that recorded s.
func (tr Trace) where(s Span) string {
	if n, ok := s.Tag(string(tracing.AttrNodeID)); ok {
		return "node " + tagText(n)
	}
	p := tr.Process(s)
	if n, ok := p.Tag(string(tracing.AttrNodeID)); ok {
		return "node " + tagText(n)
	}
	return p.ServiceName
}

// tagText prints a tag's value; whole numbers (decoded from JSON as float64)
// print as integers.
func tagText(v any) string {
	if f, ok := v.(float64); ok && f == float64(int64(f)) {
		return fmt.Sprint(int64(f))
	}
	return fmt.Sprint(v)
}
