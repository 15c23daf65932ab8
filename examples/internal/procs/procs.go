// Package procs runs an example's servers as OS processes on loopback, for
// the examples' demos and their tests: start, SIGTERM, SIGKILL, whether a
// process still runs (free loopback ports and the end of a log come from
// internal/testutil). The process is the example's own executable re-run
// with a server subcommand (the tests re-run the test binary with an
// environment variable that makes it act as main).
package procs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// Process is one server process; its output appends to LogFile.
type Process struct {
	Exe     string
	Args    []string
	Env     []string // added to os.Environ()
	LogFile string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	exit error
}

// Start starts the process; it fails if it is already running.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("procs: %s is already running (pid %d)", p.LogFile, p.cmd.Process.Pid)
		}
	}
	logFile, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Exe, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("procs: start %s: %w", p.Exe, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exit = cmd, done, nil
	go func() {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Pid is the process id of the last start (0 before the first).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process runs, or why it stopped.
func (p *Process) Running() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false, errors.New("never started")
	}
	select {
	case <-p.done:
		return false, p.exit
	default:
		return true, nil
	}
}

// Signal sends sig and waits up to timeout for the process to exit.
func (p *Process) Signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("procs: signal pid %d: %w", cmd.Process.Pid, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("procs: pid %d did not exit within %v of %v", cmd.Process.Pid, timeout, sig)
	}
}

// Kill kills the process with SIGKILL (a crash: nothing is flushed).
func (p *Process) Kill() error { return p.Signal(syscall.SIGKILL, 10*time.Second) }

// Stop stops the process with SIGTERM (orderly), and kills it after 15s.
func (p *Process) Stop() error {
	if err := p.Signal(syscall.SIGTERM, 15*time.Second); err != nil {
		_ = p.Kill()
		return err
	}
	return nil
}

// Exited returns an error naming the exit and the end of the log once the
// process has exited, nil while it runs.
func (p *Process) Exited() error {
	if up, err := p.Running(); !up {
		return fmt.Errorf("process exited (%v); the end of %s:\n%s", err, p.LogFile, testutil.LogTail(p.LogFile, 8))
	}
	return nil
}
