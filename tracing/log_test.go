package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing"
)

func TestLevelFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env     string
		want    slog.Level
		wantErr bool
	}{
		{"", slog.LevelWarn, false},
		{"debug", slog.LevelDebug, false},
		{"INFO+2", slog.LevelInfo + 2, false},
		{"loud", slog.LevelWarn, true},
	} {
		t.Setenv("FLOTILLA_TEST_LOG_LEVEL", tc.env)
		lv, err := tracing.LevelFromEnv("FLOTILLA_TEST_LOG_LEVEL", slog.LevelWarn)
		if (err != nil) != tc.wantErr || lv.Level() != tc.want {
			t.Errorf("%q: level %v err %v, want %v (error %v)", tc.env, lv.Level(), err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "FLOTILLA_TEST_LOG_LEVEL") {
			t.Errorf("error %q does not name the variable", err)
		}
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	tp, _ := newRecorded(t)
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: lv}))).With("node", 1).WithGroup("g")

	ctx, span := tp.Tracer("test").Start(context.Background(), "s")
	defer span.End()
	log.InfoContext(ctx, "traced")
	log.Info("untraced")
	lv.Set(slog.LevelWarn)
	log.InfoContext(ctx, "filtered at run time")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "trace_id="+span.SpanContext().TraceID().String()) || !strings.Contains(lines[0], "span_id=") || !strings.Contains(lines[0], "node=1") {
		t.Errorf("traced line lacks ids or attrs: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("untraced line has a trace_id: %s", lines[1])
	}
}
