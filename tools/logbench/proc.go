package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// nodeProc is one node's OS process: the driver writes requests to its
// standard input and reads answers from its standard output; its standard
// error appends to logFile. It can be killed and started again.
type nodeProc struct {
	id      uint64
	exe     string
	args    []string
	env     []string
	logFile string

	mu      sync.Mutex
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	pending map[int]chan response
	nextID  int
	exited  chan struct{}
	exitErr error
	peakHWM uint64 // the largest VmHWM seen over every run of this node, bytes
	runHWM  uint64 // VmHWM of the current (or last) run, bytes
	lastRSS uint64
}

// start starts the process; it returns the time it was started.
func (p *nodeProc) start() (time.Time, error) {
	logFile, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return time.Time{}, err
	}
	cmd := exec.Command(p.exe, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logFile.Close()
		return time.Time{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return time.Time{}, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return time.Time{}, fmt.Errorf("logbench: start node %d: %w", p.id, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.stdin, p.exited, p.exitErr = cmd, stdin, exited, nil
	p.pending, p.runHWM = map[int]chan response{}, 0
	p.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r response
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				continue
			}
			p.mu.Lock()
			ch := p.pending[r.ID]
			delete(p.pending, r.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	return t0, nil
}

// call sends r and waits up to timeout for its answer; an answer carrying
// an error is returned as an error.
func (p *nodeProc) call(r request, timeout time.Duration) (response, error) {
	ch := make(chan response, 1)
	p.mu.Lock()
	p.nextID++
	r.ID = p.nextID
	p.pending[r.ID] = ch
	stdin, exited := p.stdin, p.exited
	p.mu.Unlock()
	b, _ := json.Marshal(r)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		return response{}, fmt.Errorf("logbench: node %d: %s: %w", p.id, r.Op, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case res := <-ch:
		if res.Err != "" {
			return res, fmt.Errorf("logbench: node %d: %s: %s", p.id, r.Op, res.Err)
		}
		return res, nil
	case <-exited:
		return response{}, fmt.Errorf("logbench: node %d exited during %s (%v); the end of %s:\n%s",
			p.id, r.Op, p.exitError(), p.logFile, testutil.LogTail(p.logFile, 8))
	case <-t.C:
		return response{}, fmt.Errorf("logbench: node %d: no answer to %s within %v", p.id, r.Op, timeout)
	}
}

func (p *nodeProc) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// sample reads the process's VmHWM and VmRSS from /proc and records them.
func (p *nodeProc) sample() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	hwm, rss, err := readMem(p.cmd.Process.Pid)
	if err != nil {
		return // the process is exiting
	}
	p.runHWM = max(p.runHWM, hwm)
	p.peakHWM = max(p.peakHWM, hwm)
	p.lastRSS = rss
}

func (p *nodeProc) mem() (peak, run, rss uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peakHWM, p.runHWM, p.lastRSS
}

// kill samples the process one last time, kills it with SIGKILL (a
// crash: nothing is flushed) and waits for it to exit.
func (p *nodeProc) kill() error {
	p.sample()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("logbench: node %d (pid %d) did not exit within 30s of SIGKILL", p.id, cmd.Process.Pid)
	}
}

// stop closes the process's standard input (the node exits) and waits;
// it kills the process after 10s.
func (p *nodeProc) stop() {
	p.sample()
	p.mu.Lock()
	stdin, exited := p.stdin, p.exited
	p.mu.Unlock()
	if stdin == nil {
		return
	}
	stdin.Close()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = p.kill()
	}
}

// readMem returns VmHWM (peak resident set) and VmRSS of a process, in
// bytes, from /proc/PID/status.
func readMem(pid int) (hwm, rss uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		f := strings.Fields(val) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("logbench: /proc/%d/status: unexpected %q", pid, line)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("logbench: /proc/%d/status: %q: %w", pid, line, err)
		}
		if name == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	if hwm == 0 {
		return 0, 0, fmt.Errorf("logbench: /proc/%d/status has no VmHWM", pid)
	}
	return hwm, rss, nil
}
