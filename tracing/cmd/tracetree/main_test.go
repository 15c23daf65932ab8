package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Two traces of banking-1 as /api/traces answers them; the newer holds the
// transfer.
const tracesJSON = `{"data":[
 {"traceID":"old","spans":[{"traceID":"old","spanID":"a","operationName":"banking.command transfer","startTime":5,"processID":"p1"}],"processes":{"p1":{"serviceName":"banking-1"}}},
 {"traceID":"new","spans":[
  {"traceID":"new","spanID":"p","operationName":"raft.propose","references":[{"refType":"CHILD_OF","traceID":"new","spanID":"a"}],"startTime":20,"tags":[{"key":"raft.node_id","type":"int64","value":1}],"processID":"p1"},
  {"traceID":"new","spanID":"a","operationName":"banking.command transfer","startTime":10,"processID":"p1"}],"processes":{"p1":{"serviceName":"banking-1"}}},
 {"traceID":"newest","spans":[{"traceID":"newest","spanID":"x","operationName":"raft.election","startTime":99,"processID":"p1"}],"processes":{"p1":{"serviceName":"banking-1"}}}]}`

func TestPrintsTheNewestMatchingTrace(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/traces" || r.URL.Query().Get("service") != "banking-1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(tracesJSON))
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"-jaeger", srv.URL, "-service", "banking-1", "-operation", "banking.command transfer"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "trace new (2 spans)\nbanking.command transfer [banking-1]\n  raft.propose [node 1]\n"
	if out.String() != want {
		t.Fatalf("printed\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if code := run([]string{"-jaeger", srv.URL, "-service", "banking-1", "-operation", "raft.vote"}, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "no trace of service banking-1") {
		t.Fatalf("no matching trace: exit %d, %q", code, errb.String())
	}
	if code := run(nil, &out, &errb); code != 2 {
		t.Fatalf("no flags: exit %d, want 2", code)
	}
}
