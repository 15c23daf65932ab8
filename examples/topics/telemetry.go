package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-raft/flotilla/tracing/otlp"
	"go.opentelemetry.io/otel/trace"
)

// nodeTracing gives each server its own TracerProvider exporting over
// OTLP/gRPC, with service name topics-N and the node id on its resource, so
// that Jaeger shows which server each span ran on although all of them run
// in this one process.
type nodeTracing struct {
	endpoint string // "" = the OTEL_EXPORTER_OTLP_* variables

	mu        sync.Mutex
	providers map[uint64]trace.TracerProvider
	shutdowns []func(context.Context) error
	err       error // the first set-up error
}

// provider returns server id's TracerProvider, creating it on first use; nil
// (the global provider) if it could not be set up.
func (n *nodeTracing) provider(id uint64) trace.TracerProvider {
	n.mu.Lock()
	defer n.mu.Unlock()
	if tp, ok := n.providers[id]; ok {
		return tp
	}
	shutdown, tp, err := otlp.Setup(context.Background(), otlp.Options{
		ServiceName: fmt.Sprintf("topics-%d", id), NodeID: id,
		Endpoint: n.endpoint, Insecure: n.endpoint != "" && !strings.Contains(n.endpoint, "://"),
	})
	if err != nil {
		if n.err == nil {
			n.err = err
		}
		return nil
	}
	if n.providers == nil {
		n.providers = map[uint64]trace.TracerProvider{}
	}
	n.providers[id] = tp
	n.shutdowns = append(n.shutdowns, shutdown)
	return tp
}

// shutdown exports the spans not yet sent, waiting up to 5 seconds.
func (n *nodeTracing) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.shutdowns {
		_ = s(ctx)
	}
	n.shutdowns = nil
	return n.err
}
