package simtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
)

// client is one application client: it appends with its client id and a
// sequence number, retrying the same (id, sequence) on another node after
// an unknown outcome, and reads on any node (leader or follower).
type client struct {
	s   *sim
	idx int
	id  uint64 // session id
	seq uint64
	// registered: the session's first command (sequence 1), a
	// registration outside the checked history, was acknowledged or
	// given up on. A retry of a first command whose session expired
	// meanwhile would be applied again (the table cannot tell it from a
	// new client's); every later one is recognized (ErrDuplicate, or
	// ErrSessionExpired).
	registered bool
	rng        *rand.Rand
	lead       uint64 // the node it believes leads
	// avoid: a node not to ask (the simulator's own client avoids the
	// leader it just cut off).
	avoid uint64
}

const (
	proposeWait = time.Second
	readWait    = time.Second
	// appendFor bounds the retries of one append (fake time): long enough
	// that an outcome is rarely left unknown (many unknown outcomes make
	// the linearizability check exponential).
	appendFor = 5 * time.Second
)

func (c *client) run(stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		time.Sleep(time.Duration(1+c.rng.IntN(20)) * time.Millisecond)
		key := c.s.keys[c.rng.IntN(len(c.s.keys))]
		if c.rng.IntN(10) < 6 {
			c.append(key, fmt.Sprintf("%d.%d", c.idx, n))
		} else {
			c.read(key)
		}
	}
}

// target picks the node to ask: the believed leader, or any running node.
func (c *client) target(anyNode bool) (uint64, *actor.PID) {
	if !anyNode && c.lead != 0 && c.lead != c.avoid {
		if pid := c.s.pidOf(c.lead); pid != nil {
			return c.lead, pid
		}
	}
	ids := slices.DeleteFunc(c.s.runningIDs(), func(id uint64) bool { return id == c.avoid })
	if len(ids) == 0 {
		return 0, nil
	}
	id := ids[c.rng.IntN(len(ids))]
	return id, c.s.pidOf(id)
}

// sessionKey is the key of the registrations: no client reads it.
const sessionKey = "session"

// register opens a new session: its first command, a registration.
func (c *client) register() {
	c.registered = true
	c.seq = 0
	c.appendOp(sessionKey, fmt.Sprint(c.id), false)
}

// newSession moves to a new client id (the session expired).
func (c *client) newSession() {
	c.id += 1000 // unique: client ids are 1000 + idx + 1000*k
	c.registered = false
}

// append appends value to key's list; it reports whether the append was
// acknowledged.
func (c *client) append(key, value string) bool {
	if !c.registered {
		c.register()
	}
	return c.appendOp(key, value, true)
}

// appendOp appends value to key's list, recorded in the history when
// checked.
func (c *client) appendOp(key, value string, checked bool) bool {
	c.seq++
	in := kvInput{Key: key, Value: value}
	call := c.s.hist.now()
	add := func(ret int64, out kvOutput) {
		if checked {
			c.s.hist.add(c.idx, in, call, ret, out)
		}
	}
	unknown := false // some attempt may have been appended
	deadline := time.Now().Add(appendFor)
	for try := 0; time.Now().Before(deadline); try++ {
		id, pid := c.target(try > 0 && c.rng.IntN(3) == 0)
		if pid == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		res, err := actors.ProposeAndWait(c.s.root, pid, &actors.Propose{Data: encodeCommand(key, value), ClientID: c.id, Sequence: c.seq}, proposeWait)
		var nl *actors.NotLeaderError
		switch {
		case err == nil:
			n, ok := res.Result.(int)
			if !ok {
				c.s.violation("client %d: append %s=%s (seq %d) on node %d answered success with result %v (%T), want the list's length",
					c.idx, key, value, c.seq, id, res.Result, res.Result)
				add(c.s.hist.now(), kvOutput{Unknown: true})
				return false
			}
			c.lead = id
			add(c.s.hist.now(), kvOutput{Len: n})
			return true
		case errors.Is(err, actors.ErrDuplicate):
			// Applied once already (an earlier attempt): success, result unknown.
			add(c.s.hist.now(), kvOutput{Len: -1})
			return true
		case errors.Is(err, actors.ErrSessionExpired):
			// Not applied now; an earlier attempt may have been, before
			// the session expired: unknown. Go on with a new session.
			c.s.count(func(st *Stats) { st.SessionsExpired++ })
			if unknown {
				add(0, kvOutput{Unknown: true})
			}
			c.newSession()
			return false
		case errors.As(err, &nl):
			// Refused by a non-leader, or lost to another leader's entry:
			// this attempt did not take effect.
			c.lead = nl.Leader
			// Back off unless the hint names another node to ask: a retry
			// loop that never sleeps would stop fake time.
			if nl.Leader == 0 || nl.Leader == id || nl.Leader == c.avoid || c.s.pidOf(nl.Leader) == nil {
				time.Sleep(20 * time.Millisecond)
			} else {
				time.Sleep(time.Millisecond)
			}
		case errors.Is(err, actors.ErrOverloaded):
			// Refused before it was appended: back off and retry there.
			c.s.count(func(st *Stats) { st.Overloaded++ })
			time.Sleep(time.Duration(1+c.rng.IntN(10)) * time.Millisecond)
		case errors.Is(err, actors.ErrRetry), errors.Is(err, actors.ErrPaused):
			c.lead = 0
			time.Sleep(20 * time.Millisecond)
		default:
			// ErrStopped, ErrOutcomeUnknown, a dead letter: unknown.
			unknown = true
			c.lead = 0
			time.Sleep(20 * time.Millisecond)
		}
	}
	if unknown {
		add(0, kvOutput{Unknown: true})
	}
	// Otherwise no attempt was appended: the append did not happen.
	return false
}

func (c *client) read(key string) {
	// Leaders and followers alike: a follower asks the leader for the read
	// index.
	id, pid := c.target(c.rng.IntN(2) == 0)
	c.readOn(id, pid, key)
}

// readOn reads key on node id.
func (c *client) readOn(id uint64, pid *actor.PID, key string) {
	if pid == nil {
		return
	}
	call := c.s.hist.now()
	res, err := actors.Request[*actors.ReadResponse](c.s.root, pid, &actors.Read{Query: key}, readWait)
	ret := c.s.hist.now()
	if err != nil {
		if errors.Is(err, actors.ErrOverloaded) {
			c.s.count(func(st *Stats) { st.Overloaded++ })
		}
		return // a failed read has no effect: left out of the history
	}
	vals, ok := res.Result.([]string)
	if !ok {
		c.s.violation("client %d: read %s on node %d answered %v (%T)", c.idx, key, id, res.Result, res.Result)
		return
	}
	c.s.hist.add(c.idx, kvInput{Read: true, Key: key}, call, ret, kvOutput{Values: vals})
}
