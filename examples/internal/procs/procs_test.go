package procs

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// TestProcess: a started process runs and logs to its file; Kill ends it,
// Exited then names the end of the log; it can be started again.
func TestProcess(t *testing.T) {
	p := &Process{Exe: "/bin/sh", Args: []string{"-c", "echo started $FLAVOUR; exec sleep 60"}, Env: []string{"FLAVOUR=vanilla"},
		LogFile: filepath.Join(t.TempDir(), "p.log")}
	if up, _ := p.Running(); up {
		t.Fatal("running before Start")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Error("a second Start of a running process succeeded")
	}
	if err := p.Exited(); err != nil {
		t.Fatalf("Exited while running: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); testutil.LogTail(p.LogFile, 1) != "started vanilla"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the process did not log within 10s: %q", testutil.LogTail(p.LogFile, 1))
		}
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	err := p.Exited()
	if err == nil || !strings.Contains(err.Error(), "started vanilla") {
		t.Fatalf("Exited after Kill: %v, want the end of the log", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
}
