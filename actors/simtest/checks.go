package simtest

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/flotilla-raft/flotilla/actors"
)

// This file holds the checks of a run that look at the whole cluster:
// liveness after the heal (converge, with the statuses and stacks of a stuck
// seed), the final state of every member (acknowledged appends exactly once,
// equal replicas) and the linearizability of the client history (porcupine).

// CheckHistory checks the client history for linearizability (porcupine,
// at most timeout of real time). Call it outside the synctest bubble. When
// the history is illegal and visualize is set, porcupine's HTML view of it
// is written to that path.
func (r *Result) CheckHistory(timeout time.Duration, visualize string) error {
	if len(r.groupHists) > 0 {
		// Options.Groups > 1: every group's history on its own.
		var errs []error
		for i, h := range r.groupHists {
			vis := ""
			if visualize != "" {
				vis = strings.TrimSuffix(visualize, ".html") + fmt.Sprintf("-group-%d.html", i+1)
			}
			if err := checkHistory(h, timeout, vis); err != nil {
				errs = append(errs, fmt.Errorf("group %d: %w", i+1, err))
			}
		}
		return errors.Join(errs...)
	}
	return checkHistory(r.hist, timeout, visualize)
}

func checkHistory(h *history, timeout time.Duration, visualize string) error {
	res, n, err := h.check(timeout, visualize)
	if res == porcupine.Ok {
		return nil
	}
	if err != nil {
		return fmt.Errorf("porcupine: history of %d operations is %s (visualization: %v)", n, res, err)
	}
	if res == porcupine.Illegal && visualize != "" {
		return fmt.Errorf("porcupine: history of %d operations is %s; see %s", n, res, visualize)
	}
	return fmt.Errorf("porcupine: history of %d operations is %s", n, res)
}

// converge checks liveness after the heal: within healBound a leader
// commits a proposal, and every member applies up to it.
func (s *sim) converge() {
	healed := time.Now()
	deadline := healed.Add(healBound)
	var index uint64
	for time.Now().Before(deadline) {
		s.handleStopped()
		lead, _ := s.leader()
		if lead != 0 {
			// One session: a retry does not append the marker twice.
			r, err := actors.ProposeAndWait(s.root, s.pidOf(lead), &actors.Propose{Data: encodeCommand("marker", "end"), ClientID: 999, Sequence: 1}, time.Second)
			if err == nil || errors.Is(err, actors.ErrDuplicate) && r != nil && r.Index > 0 {
				index = r.Index
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if index == 0 {
		s.violation("no leader committed a proposal within %v (%d ticks) after the faults healed", healBound, healBound/tickInterval)
		s.traceStatuses()
		s.saveStacks()
		return
	}
	if _, st := s.leader(); st != nil && st.Config != nil {
		s.syncMembers(st.Config)
	}
	ticks := int(time.Since(healed) / tickInterval)
	s.count(func(st *Stats) { st.HealTicks += ticks })
	s.tracef("progress after heal: marker committed at index %d after %d ticks", index, ticks)
	for {
		s.handleStopped()
		behind := ""
		for _, id := range s.runningIDs() {
			if st := s.status(id); st == nil || st.Applied < index {
				behind = fmt.Sprintf("node %d: %v", id, st)
				break
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			s.violation("not every member applied index %d within %v after the heal: %s", index, healBound, behind)
			s.traceStatuses()
			s.saveStacks()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// traceStatuses puts every running member's status in the trace.
func (s *sim) traceStatuses() {
	for _, id := range s.runningIDs() {
		if st := s.status(id); st != nil {
			s.tracef("status %v; config %v", st, st.Config)
		} else {
			s.tracef("status of node %d: no answer", id)
		}
	}
}

// saveStacks keeps every goroutine's stack (of the process: in a parallel
// sweep, other seeds' too) for the trace of a stuck seed.
func (s *sim) saveStacks() {
	buf := make([]byte, 1<<22)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stacks = string(buf[:runtime.Stack(buf, true)])
}

// checkFinal: every member holds every acknowledged append exactly once,
// and no append twice; all members have the same state.
func (s *sim) checkFinal() {
	s.hist.mu.Lock()
	acked := s.hist.acked
	s.hist.mu.Unlock()
	var refID uint64
	var ref map[string][]string
	var refLast, refChain uint64
	for _, id := range s.runningIDs() {
		n := s.nodes[id]
		last, chain, kv := n.rep.state()
		for key, vals := range acked {
			have := map[string]int{}
			for _, v := range kv[key] {
				have[v]++
			}
			for _, v := range vals {
				if have[v] != 1 {
					s.violation("node %d holds acknowledged append %s=%s %d times", id, key, v, have[v])
				}
			}
		}
		for key, list := range kv {
			if key == sessionKey || key == "marker" && s.opt.SessionExpiry {
				// A session's first command, retried after the session
				// expired, is applied again (see actors.Propose): the
				// registrations absorb that, and so may the marker, whose
				// session is its only command.
				continue
			}
			seen := map[string]bool{}
			for _, v := range list {
				if seen[v] {
					s.violation("node %d holds append %s=%s twice", id, key, v)
				}
				seen[v] = true
			}
		}
		if ref == nil {
			refID, ref, refLast, refChain = id, kv, last, chain
			continue
		}
		if last != refLast || chain != refChain {
			s.violation("node %d applied up to command %d (chain %x), node %d up to %d (chain %x)", id, last, chain, refID, refLast, refChain)
		}
	}
	s.count(func(st *Stats) {
		for _, v := range acked {
			st.Acked += len(v)
		}
	})
}
