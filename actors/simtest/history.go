package simtest

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// The client history, checked for linearizability with porcupine against a
// model of the key → list store. Time is a logical clock (one counter for
// every call and return): under synctest many events share one instant of
// fake time, and porcupine needs a strict order.

type kvInput struct {
	Read  bool
	Key   string
	Value string // appends
}

type kvOutput struct {
	// Unknown: the outcome was never learned (the append may or may not
	// have taken effect); its Return is +inf.
	Unknown bool
	// Len is the list's length after the append; -1 when the append is known
	// to have been applied once but its result is not (ErrDuplicate).
	Len    int
	Values []string // reads
}

type history struct {
	clock atomic.Int64
	mu    sync.Mutex
	ops   []porcupine.Operation
	// acked: appends answered with success, per key.
	acked map[string][]string
	// maybe: appends whose outcome is unknown, per key.
	maybe map[string][]string
	reads int
}

func newHistory() *history {
	return &history{acked: map[string][]string{}, maybe: map[string][]string{}}
}

func (h *history) now() int64 { return h.clock.Add(1) }

func (h *history) add(client int, in kvInput, call, ret int64, out kvOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.Unknown {
		ret = math.MaxInt64
		h.maybe[in.Key] = append(h.maybe[in.Key], in.Value)
	} else if !in.Read {
		h.acked[in.Key] = append(h.acked[in.Key], in.Value)
	} else {
		h.reads++
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// kvModel is a list per key, partitioned by key.
var kvModel = porcupine.Model{
	Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range ops {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(string), input.(kvInput), output.(kvOutput)
		if in.Read {
			return strings.Join(out.Values, ",") == s, s
		}
		next := in.Value
		if s != "" {
			next = s + "," + in.Value
		}
		if out.Unknown || out.Len < 0 {
			return true, next
		}
		return strings.Count(next, ",")+1 == out.Len, next
	},
	Equal: func(a, b any) bool { return a.(string) == b.(string) },
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch {
		case in.Read:
			return fmt.Sprintf("read %s → %v", in.Key, out.Values)
		case out.Unknown:
			return fmt.Sprintf("append %s %s → unknown", in.Key, in.Value)
		default:
			return fmt.Sprintf("append %s %s → len %d", in.Key, in.Value, out.Len)
		}
	},
}

// check runs porcupine on the history. Unknown (porcupine ran out of time)
// is reported as such, not as a pass. When the history is not
// linearizable and visualize is set, porcupine's HTML view of it is
// written there.
func (h *history) check(timeout time.Duration, visualize string) (porcupine.CheckResult, int, error) {
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	var err error
	if res == porcupine.Illegal && visualize != "" {
		err = porcupine.VisualizePath(kvModel, info, visualize)
	}
	return res, len(ops), err
}
