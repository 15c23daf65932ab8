//go:build tools

// Package jaeger pins Jaeger v2 (the Go module github.com/jaegertracing/jaeger) so
// that build.sh can compile the all-in-one binary for end-to-end tracing tests.
// `go install github.com/jaegertracing/jaeger/cmd/jaeger@v1.76.0` is refused because
// Jaeger's go.mod carries a replace directive; this wrapper module repeats that
// replace and builds the command from here instead.
package jaeger

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
