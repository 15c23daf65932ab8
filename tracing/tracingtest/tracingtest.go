// Package tracingtest holds testing helpers for tracing: an in-memory TracerProvider
// whose spans are saved as a Mermaid sequence diagram when the test fails. It
// imports "testing", so only tests import it.
//
//	func TestReplication(t *testing.T) {
//		tp, rec := tracingtest.NewProvider(t) // diagram saved if t fails
//		node := actors.Props(cfg.WithTracerProvider(tp)) ...
//	}
package tracingtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// DirEnv names the environment variable that chooses where SaveOnFailure writes
// diagrams. Default: os.TempDir().
const DirEnv = "FLOTILLA_TRACE_DIR"

// NewProvider returns an SDK TracerProvider that records every span in the returned
// recorder (synchronously, no exporter), shut down in t.Cleanup, with SaveOnFailure
// registered.
func NewProvider(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	// Cleanups run last-registered first: save, then shut down.
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	SaveOnFailure(t, rec)
	return tp, rec
}

// SaveOnFailure registers a t.Cleanup that, when t has failed, writes the spans in
// recorder (ended, and started but not ended) as a Mermaid sequence diagram in a
// Markdown file under $FLOTILLA_TRACE_DIR (or os.TempDir()) and logs its path.
func SaveOnFailure(t testing.TB, recorder *tracetest.SpanRecorder) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		path, err := Save(t.Name(), recorder)
		if err != nil {
			t.Logf("tracingtest: saving the trace diagram: %v", err)
			return
		}
		t.Logf("trace diagram of %d spans: %s", len(recorder.Started()), path)
	})
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Save writes the spans in recorder as a Markdown file holding a Mermaid sequence
// diagram, named after name, and returns its path.
func Save(name string, recorder *tracetest.SpanRecorder) (string, error) {
	dir := os.Getenv(DirEnv)
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "flotilla-trace-"+unsafeName.ReplaceAllString(name, "_")+"-*.md")
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(Markdown(name, Spans(recorder))); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

// Spans returns every span recorder has seen: the started ones, which include the
// ended ones; unended spans show as "(open)" in the diagram.
func Spans(recorder *tracetest.SpanRecorder) []sdktrace.ReadOnlySpan {
	started := recorder.Started()
	out := make([]sdktrace.ReadOnlySpan, len(started))
	for i, s := range started {
		out[i] = s
	}
	return out
}

// Markdown renders spans as a Markdown page: the Mermaid diagram, then a table of
// the spans with their trace and parent ids for looking them up.
func Markdown(title string, spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n```mermaid\n%s```\n\n", title, RenderMermaid(spans))
	b.WriteString("| start | span | node | trace | span id | parent | links |\n|---|---|---|---|---|---|---|\n")
	for _, s := range spans {
		node := ""
		for _, kv := range s.Attributes() {
			if kv.Key == tracing.AttrNodeID {
				node = kv.Value.String()
			}
		}
		parent := ""
		if s.Parent().IsValid() {
			parent = s.Parent().SpanID().String()
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d |\n",
			s.StartTime().UTC().Format("15:04:05.000000"), s.Name(), node,
			s.SpanContext().TraceID(), s.SpanContext().SpanID(), parent, len(s.Links()))
	}
	return b.String()
}

// RenderMermaid draws spans recorded by the SDK (tracetest.SpanRecorder.Ended or
// Started, or tracetest.SpanStubs.Snapshots) as tracing.RenderMermaid does.
func RenderMermaid(spans []sdktrace.ReadOnlySpan) string {
	ds := make([]tracing.DiagramSpan, len(spans))
	for i, s := range spans {
		st := s.Status()
		ds[i] = tracing.DiagramSpan{
			Name: s.Name(), Attributes: s.Attributes(), Start: s.StartTime(),
			Open: s.EndTime().IsZero(), Failed: st.Code == codes.Error, Description: st.Description,
		}
	}
	return tracing.RenderMermaid(ds)
}
