// Package e2e holds the end-to-end tracing test: three node processes on
// the gRPC transport export their spans over OTLP to a real Jaeger, and the
// test reads one proposal's trace back through Jaeger's query API and checks
// its structure. It has no code of its own outside the test.
//
//	make jaeger && FLOTILLA_REQUIRE_JAEGER=1 go test -run TestProposalTraceInJaeger -v ./tracing/e2e/
package e2e
