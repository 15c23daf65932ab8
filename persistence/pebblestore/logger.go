package pebblestore

import (
	"context"
	"fmt"
	"log/slog"
)

// pebbleLogger adapts a *slog.Logger to Pebble's Logger. Pebble's own
// default exits the process on Fatalf; this one logs at Error level and
// fails the database instead (every later call answers ErrFailed), so the
// node stops with an error the application sees. Pebble continues after
// Fatalf in some places as if nothing happened (a failed commit returns
// nil), which is why the database checks its failure after every commit.
type pebbleLogger struct {
	l       *slog.Logger
	onFatal func(msg string)
}

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelInfo) {
		p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error("fatal: "+msg, "component", "pebble")
	p.onFatal(msg)
}
