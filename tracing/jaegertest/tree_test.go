package jaegertest_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
)

// A trace as Jaeger's query API answers it: a command span of the banking
// service (node id on its process only), the proposal under it, an apply on
// another node linked to the proposal.
const traceJSON = `{"data":[{"traceID":"t1","spans":[
 {"traceID":"t1","spanID":"c","operationName":"raft.apply","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"p"},{"refType":"FOLLOWS_FROM","traceID":"t1","spanID":"p"}],"startTime":30,"tags":[{"key":"raft.node_id","type":"int64","value":2},{"key":"raft.index","type":"int64","value":1000000}],"processID":"p2"},
 {"traceID":"t1","spanID":"p","operationName":"raft.propose","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"root"}],"startTime":20,"tags":[{"key":"raft.node_id","type":"int64","value":1},{"key":"raft.index","type":"int64","value":3}],"processID":"p1"},
 {"traceID":"t1","spanID":"r","operationName":"raft.replicate","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"p"}],"startTime":25,"tags":[{"key":"raft.node_id","type":"int64","value":1},{"key":"raft.peer","type":"int64","value":2}],"processID":"p1"},
 {"traceID":"t1","spanID":"root","operationName":"banking.command transfer","references":[],"startTime":10,"tags":[],"processID":"p1"}],
 "processes":{"p1":{"serviceName":"banking-1","tags":[{"key":"raft.node_id","type":"int64","value":1}]},"p2":{"serviceName":"banking-2","tags":[]}}}]}`

func TestTreeFromTheQueryAPI(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces/t1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(traceJSON))
	}))
	defer srv.Close()
	tr, err := jaegertest.Connect(srv.URL).Trace("t1")
	if err != nil {
		t.Fatal(err)
	}
	want := `banking.command transfer [node 1]
  raft.propose [node 1] index=3
    raft.replicate [node 1] peer=2
    raft.apply [node 2] index=1000000 links=1
`
	if got := tr.Tree(); got != want {
		t.Fatalf("Tree() =\n%s\nwant\n%s", got, want)
	}
	if _, err := jaegertest.Connect(srv.URL).Trace("nope"); !errors.Is(err, jaegertest.ErrNotFound) {
		t.Fatalf("unknown trace: %v, want ErrNotFound", err)
	}
}
