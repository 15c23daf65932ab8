// Package testutil holds what the tests of several packages (and the
// examples' demos, tools/logbench) need to run real processes on loopback:
// free ports, a child process that re-runs the current test binary, the end
// of a child's log, and a buffer that a child's output goroutine and a
// failing test may use at once. It is
// internal: no application imports it.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// FreePorts reserves n distinct loopback addresses ("127.0.0.1:port") by
// listening on port 0, then releases them: another process could take one
// in between (rare on a test machine; the server then fails with a clear
// error).
func FreePorts(n int) ([]string, error) {
	var out []string
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testutil: reserve a loopback port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// ChildCommand returns a command that re-runs the current test binary
// (os.Args[0]) with args, and env added to the environment; with no args it
// runs no test (-test.run=^$), for a binary whose TestMain or init acts as
// the child when it finds its variable in env. A -race child exits without
// the race detector's 1s sleep at exit (its reports still fail it through
// the exit status).
func ChildCommand(args []string, env ...string) *exec.Cmd {
	if len(args) == 0 {
		args = []string{"-test.run=^$"}
	}
	cmd := exec.Command(os.Args[0], args...)
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(append(os.Environ(), env...), "GORACE="+gorace)
	return cmd
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a child process's
// output goroutine writes it while a failing test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// LogTail returns the last n lines of a file (a child process's log), or
// the error reading it.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
