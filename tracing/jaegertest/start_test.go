package jaegertest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
)

// recordingTB records what Start asks of its test and stops Start there, as
// t.Fatalf and t.Skipf would.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

type stopped struct{}

func (r *recordingTB) Helper()             {}
func (r *recordingTB) Logf(string, ...any) {}
func (r *recordingTB) Fatalf(format string, a ...any) {
	r.fatal = fmt.Sprintf(format, a...)
	panic(stopped{})
}
func (r *recordingTB) Skipf(format string, a ...any) {
	r.skip = fmt.Sprintf(format, a...)
	panic(stopped{})
}

func startRecorded(t *testing.T) *recordingTB {
	r := &recordingTB{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil && v != (stopped{}) {
				panic(v)
			}
		}()
		jaegertest.Start(r)
	}()
	return r
}

// TestStartNeverBuilds: without a Jaeger binary, Start skips, or fails at once when
// FLOTILLA_REQUIRE_JAEGER is set; it never runs tools/jaeger/build.sh (a build takes
// minutes and outlived the test's timeout). A fake build.sh leaves a mark if run.
func TestStartNeverBuilds(t *testing.T) {
	root := t.TempDir()
	mark := filepath.Join(root, "built")
	script := filepath.Join(root, "tools", "jaeger", "build.sh")
	if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+mark+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	t.Setenv(jaegertest.EnvBin, "")

	for _, require := range []string{"", "1"} {
		t.Setenv(jaegertest.EnvRequire, require)
		r := startRecorded(t)
		if _, err := os.Stat(mark); err == nil {
			t.Fatalf("%s=%q: Start ran tools/jaeger/build.sh", jaegertest.EnvRequire, require)
		}
		msg := r.skip
		if require != "" {
			if r.fatal == "" || r.skip != "" {
				t.Fatalf("%s=1 without a binary: fatal %q, skip %q; want a failure", jaegertest.EnvRequire, r.fatal, r.skip)
			}
			msg = r.fatal
		} else if r.skip == "" || r.fatal != "" {
			t.Fatalf("no binary: fatal %q, skip %q; want a skip", r.fatal, r.skip)
		}
		if !strings.Contains(msg, "make jaeger") {
			t.Errorf("message %q does not say to run make jaeger", msg)
		}
	}
}
