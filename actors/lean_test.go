package actors_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsOnlyTheOTelAPI guards the lean import: an application that imports
// actors (and the in-memory transport) must not link the OpenTelemetry trace SDK, the
// OTLP exporter or gRPC; those come with tracing/otlp, which it imports only to export.
func TestImportsOnlyTheOTelAPI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".", "../cluster/transport/inmem").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"go.opentelemetry.io/otel/sdk/trace",
			"go.opentelemetry.io/otel/exporters/otlp/",
			"google.golang.org/grpc",
		} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("actors depends on %s: move the code that needs it to tracing/otlp or a test", pkg)
			}
		}
	}
}
