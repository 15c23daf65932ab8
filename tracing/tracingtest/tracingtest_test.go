package tracingtest_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/tracingtest"
)

// fakeTB lets a test see what SaveOnFailure does when a test fails, without failing
// itself: Failed is settable and cleanups run on demand.
type fakeTB struct {
	testing.TB
	failed   bool
	cleanups []func()
	logs     []string
}

func (f *fakeTB) Helper()                      {}
func (f *fakeTB) Name() string                 { return "TestFake/sub case" }
func (f *fakeTB) Failed() bool                 { return f.failed }
func (f *fakeTB) Cleanup(fn func())            { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Logf(format string, a ...any) { f.logs = append(f.logs, format) }
func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func record(t *testing.T, tb testing.TB) {
	tp, _ := tracingtest.NewProvider(tb)
	tr := tracing.NewTracer(tp, 1)
	ctx, span := tr.Start(context.Background(), tracing.SpanReplicate, tracing.Attrs{Peer: 2, Term: 1, First: 1, Last: 2})
	span.End()
	_, open := tr.Start(ctx, tracing.SpanCommit, tracing.Attrs{Index: 2})
	_ = open // left open: shows as (open)
}

func TestSaveOnFailure(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(tracingtest.DirEnv, dir)

	passed := &fakeTB{TB: t}
	record(t, passed)
	passed.runCleanups()
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("a passing test wrote %d files", len(files))
	}

	failed := &fakeTB{TB: t, failed: true}
	record(t, failed)
	failed.runCleanups()
	files, _ := filepath.Glob(filepath.Join(dir, "flotilla-trace-TestFake_sub_case-*.md"))
	if len(files) != 1 {
		t.Fatalf("failing test wrote %v, want one diagram", files)
	}
	if len(failed.logs) != 1 {
		t.Fatalf("logged %v, want the diagram's path once", failed.logs)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"```mermaid\nsequenceDiagram", "n1->>n2: append [1..2] t1", "commit 2 (open)", "| raft.replicate | 1 |"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("diagram lacks %q:\n%s", want, b)
		}
	}
}
