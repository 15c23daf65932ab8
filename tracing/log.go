package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"go.opentelemetry.io/otel/trace"
)

// LevelFromEnv returns a slog.LevelVar set from the environment variable key
// ("debug", "INFO", "warn+2", ... as slog.Level.UnmarshalText reads them), or to def
// when key is unset or empty. The application hands the LevelVar to its handler
// (slog.HandlerOptions.Level) and may change it at run time with Set.
func LevelFromEnv(key string, def slog.Level) (*slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	lv.Set(def)
	v := os.Getenv(key)
	if v == "" {
		return lv, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		return lv, fmt.Errorf("tracing: %s=%q: %w", key, v, err)
	}
	lv.Set(l)
	return lv, nil
}

// LogHandler wraps h so that records logged with a context holding a valid span
// (slog.InfoContext and friends) carry trace_id and span_id, which join log lines
// to the spans in Jaeger.
func LogHandler(h slog.Handler) slog.Handler { return traceHandler{h} }

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
