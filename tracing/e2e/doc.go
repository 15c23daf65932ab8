// Package e2e holds the end-to-end tracing tests: three node processes on
// the gRPC transport, each exporting its spans over OTLP under its own service
// name (flotilla-node-N), run a proposal, a read on a follower, a
// configuration change, a snapshot install and a leadership transfer against a
// real Jaeger. TestTracesInJaeger reads each flow's trace back through
// Jaeger's query API and checks its structure; TestTracesInJaegerUI opens the
// same traces in the real Jaeger UI in headless Chromium and checks what the
// page shows. It has no code of its own outside the tests.
//
//	make jaeger && FLOTILLA_REQUIRE_JAEGER=1 go test -v ./tracing/e2e/
package e2e
