package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestScenario runs the whole scenario in fake time (synctest) and checks
// that it ends with every server holding the same table, balanced over the
// remaining voters, and that the narrative tells each step.
func TestScenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sys := actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.DiscardHandler)
		})))
		var buf syncBuffer
		recs := map[uint64]*tracetest.SpanRecorder{}
		var recMu sync.Mutex
		perNode := func(id uint64) trace.TracerProvider { // as -otlp-endpoint does, recording instead
			recMu.Lock()
			defer recMu.Unlock()
			recs[id] = tracetest.NewSpanRecorder()
			return sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recs[id]))
		}
		out, err := runScenario(sys, options{Out: &buf, Tick: 10 * time.Millisecond, Patience: 30 * time.Second, TracerProvider: perNode})
		sys.Shutdown()
		// protoactor's dead-letter throttle parks a goroutine on a ticker
		// for DeadLetterThrottleInterval; let fake time pass it so the
		// bubble ends with no goroutine left.
		time.Sleep(sys.Config.DeadLetterThrottleInterval + time.Millisecond)
		t.Logf("scenario output:\n%s", buf.String())
		if err != nil {
			t.Fatal(err)
		}
		checkOutcome(t, out)
		// Each server's spans went to its own provider.
		if len(recs) < 4 {
			t.Errorf("%d servers asked for a TracerProvider, want every one started (4)", len(recs))
		}
		for id, rec := range recs {
			applies := 0
			for _, sp := range rec.Ended() {
				for _, kv := range sp.Attributes() {
					if kv.Key == tracing.AttrNodeID && kv.Value.AsInt64() != int64(id) {
						t.Fatalf("server %d's provider recorded %s of node %d", id, sp.Name(), kv.Value.AsInt64())
					}
				}
				if sp.Name() == tracing.SpanApply {
					applies++
				}
			}
			if applies == 0 {
				t.Errorf("server %d recorded no %s span", id, tracing.SpanApply)
			}
		}
		for _, want := range []string{"became the leader", "created topic alerts", "is now a learner", "is now a voter",
			"now owns topics", "move", "removed node", "leads now", "all servers stopped"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("the narrative lacks %q", want)
			}
		}
	})
}

// TestScenarioPebble runs the scenario with every log in Pebble (-data),
// in real time.
func TestScenarioPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("Pebble on disk, real time")
	}
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	if code := run([]string{"-data", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("run -data %s exited %d\nstdout:\n%s\nstderr:\n%s", dir, code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "scenario passed") {
		t.Fatalf("no success line in the output:\n%s", stdout.String())
	}
	// A second run on the same directory is refused: the logs would
	// contradict the bootstrap.
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"-data", dir}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "not empty") {
		t.Fatalf("second run on %s: exit %d, stderr %q; want 1 and a 'not empty' error", dir, code, stderr.String())
	}
}

func checkOutcome(t *testing.T, out *outcome) {
	t.Helper()
	if out == nil {
		t.Fatal("no outcome")
	}
	if len(out.Tables) != len(out.Voters) || len(out.Voters) != 3 {
		t.Fatalf("tables of %d servers, voters %v: want 3 of each", len(out.Tables), out.Voters)
	}
	if !slices.Contains(out.Voters, out.Leader) {
		t.Errorf("leader %d is not one of the voters %v", out.Leader, out.Voters)
	}
	var ref []Assignment
	for _, id := range out.Voters {
		tab := out.Tables[id]
		if ref == nil {
			ref = tab
		} else if !slices.Equal(tab, ref) {
			t.Errorf("node %d disagrees: %v, want %v", id, tab, ref)
		}
	}
	if len(ref) != len(topicNames) {
		t.Fatalf("final table has %d topics, want %d: %v", len(ref), len(topicNames), ref)
	}
	count := map[uint64]int{}
	for _, a := range ref {
		count[a.Owner]++
	}
	for _, id := range out.Voters {
		if count[id] != len(topicNames)/len(out.Voters) {
			t.Errorf("node %d owns %d topics, want %d: %v", id, count[id], len(topicNames)/len(out.Voters), ref)
		}
	}
}

func TestPlan(t *testing.T) {
	as := func(owners ...uint64) []Assignment {
		var out []Assignment
		for i, o := range owners {
			out = append(out, Assignment{Topic: fmt.Sprintf("t%d", i), Owner: o})
		}
		return out
	}
	tests := []struct {
		name    string
		table   []Assignment
		servers []uint64
		moves   int
	}{
		{"empty", nil, []uint64{1, 2}, 0},
		{"no servers", as(0, 0), nil, 0},
		{"unassigned", as(0, 0, 0, 0, 0, 0), []uint64{1, 2, 3}, 6},
		{"balanced", as(1, 2, 3, 1, 2, 3), []uint64{1, 2, 3}, 0},
		{"balanced with remainder", as(1, 2, 3, 1), []uint64{1, 2, 3}, 0},
		{"a server joins", as(1, 2, 3, 1, 2, 3), []uint64{1, 2, 3, 4}, 1},
		{"a server leaves", as(1, 2, 3, 1, 2, 3), []uint64{1, 3}, 2},
		{"all on one", as(1, 1, 1, 1, 1, 1), []uint64{1, 2, 3}, 4},
		{"orphans and surplus", as(9, 9, 1, 1, 1, 1), []uint64{1, 2}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moves := Plan(tt.table, tt.servers)
			if len(moves) != tt.moves {
				t.Errorf("Plan made %d moves, want %d: %v", len(moves), tt.moves, moves)
			}
			after := applyMoves(t, tt.table, moves)
			if len(tt.servers) > 0 && !Balanced(after, tt.servers) {
				t.Errorf("not balanced after %v: %v", moves, after)
			}
			if again := Plan(after, tt.servers); len(again) != 0 {
				t.Errorf("a second plan moves again: %v", again)
			}
		})
	}
}

// applyMoves applies moves through Table.Apply, as the log would.
func applyMoves(t *testing.T, table []Assignment, moves []Move) []Assignment {
	t.Helper()
	tab := NewTable()
	idx := uint64(0)
	apply := func(c Command) any {
		idx++
		return tab.Apply(&messages.Entry{Index: idx, Data: c.Encode()})
	}
	var setup []Move
	for _, a := range table {
		if res := apply(Command{Op: OpCreate, Topic: a.Topic}); res != nil {
			t.Fatalf("create %s: %v", a.Topic, res)
		}
		if a.Owner != 0 {
			setup = append(setup, Move{Topic: a.Topic, To: a.Owner})
		}
	}
	if res := apply(Command{Op: OpAssign, Moves: setup}); res != nil {
		t.Fatalf("setup: %v", res)
	}
	if res := apply(Command{Op: OpAssign, Moves: moves}); res != nil {
		t.Fatalf("apply the plan %v: %v", moves, res)
	}
	return tab.All()
}

func TestTableApply(t *testing.T) {
	tab := NewTable()
	idx := uint64(0)
	apply := func(c Command) error {
		idx++
		res := tab.Apply(&messages.Entry{Index: idx, Data: c.Encode()})
		if res == nil {
			return nil
		}
		return res.(error)
	}
	check := func(err, want error) {
		t.Helper()
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("got %v, want %v", err, want)
		}
	}
	check(apply(Command{Op: OpCreate, Topic: "a"}), nil)
	check(apply(Command{Op: OpCreate, Topic: "a"}), ErrTopicExists)
	check(apply(Command{Op: OpCreate, Topic: "b"}), nil)
	check(apply(Command{Op: OpAssign, Moves: []Move{{Topic: "a", To: 1}, {Topic: "b", To: 2}}}), nil)
	// All or none: the second move is stale, so the first is not made.
	check(apply(Command{Op: OpAssign, Moves: []Move{{Topic: "a", From: 1, To: 3}, {Topic: "b", From: 1, To: 3}}}), ErrStaleMove)
	if got := tab.Owned(1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("node 1 owns %v after a refused move, want [a]", got)
	}
	if a, _ := tab.Get("a"); a.Epoch != 4 {
		t.Fatalf("a's epoch is %d, want 4 (the assign entry)", a.Epoch)
	}
	check(apply(Command{Op: OpAssign, Moves: []Move{{Topic: "zz", To: 1}}}), ErrNoTopic)
	check(apply(Command{Op: OpDrop, Topic: "b"}), nil)
	check(apply(Command{Op: OpDrop, Topic: "b"}), ErrNoTopic)
	check(apply(Command{Op: "frobnicate"}), ErrBadCommand)
	if res := tab.Apply(&messages.Entry{Index: 99, Data: []byte("{")}); !errors.Is(res.(error), ErrBadCommand) {
		t.Fatalf("undecodable entry: %v", res)
	}

	snap, err := tab.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := NewTable()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(restored.All(), tab.All()) {
		t.Fatalf("restored %v, want %v", restored.All(), tab.All())
	}
	if _, err := tab.Query(42); !errors.Is(err, ErrUnknownQuery) {
		t.Fatalf("Query(42): %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use: brokers print from
// their actors.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
