package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
)

// TestMain runs this binary as a node process when asked to.
func TestMain(m *testing.M) {
	if id := os.Getenv(envNode); id != "" {
		if err := runNode(id); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTracesInJaeger: three processes over gRPC, each exporting under its
// own service name to a real Jaeger, run a proposal, a read on a follower,
// a configuration change, a snapshot install and a leadership transfer;
// the test reads each flow's trace back through Jaeger's query API and
// checks its structure (parents, kinds, services, no Jaeger warnings,
// cross-process children inside their parents), and that no pre-vote or
// vote is a trace of its own.
func TestTracesInJaeger(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: three processes and a real Jaeger")
	}
	j := jaegertest.Start(t) // skips when the binary is absent, unless FLOTILLA_REQUIRE_JAEGER is set
	p := startProcs(t, j)
	sc := runScenario(t, p)
	findTraces(t, j, sc)
}
