package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
)

// Directory maps server ids to their brokers: the address book a real
// deployment gets from its configuration or service discovery. It is safe
// for concurrent use.
type Directory struct {
	mu      sync.Mutex
	brokers map[uint64]*actor.PID
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory { return &Directory{brokers: map[uint64]*actor.PID{}} }

// Set records (pid non-nil) or forgets (pid nil) server id's broker.
func (d *Directory) Set(id uint64, pid *actor.PID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pid == nil {
		delete(d.brokers, id)
		return
	}
	d.brokers[id] = pid
}

// Get returns server id's broker, nil if unknown.
func (d *Directory) Get(id uint64) *actor.PID {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.brokers[id]
}

// IDs returns the known server ids, sorted.
func (d *Directory) IDs() []uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]uint64, 0, len(d.brokers))
	for id := range d.brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Client talks to the cluster the way a producer or an operator would:
// it proposes through the leader (following NotLeader redirects, retrying
// with the same client id and sequence so a retry is never applied twice),
// routes topics with linearizable reads, and publishes to owners. A Client
// is used by one goroutine at a time.
type Client struct {
	Root *actor.RootContext
	Dir  *Directory
	// ID is the client's session id for idempotent proposals, non-zero.
	ID uint64
	// Patience bounds each operation, retries included.
	Patience time.Duration

	seq    uint64
	leader uint64 // last known leader, a hint
}

// errNoServer: the directory is empty.
var errNoServer = errors.New("topics: no server known")

// retryable reports whether err is worth trying again, elsewhere or later.
func retryable(err error) bool {
	var nl *actors.NotLeaderError
	var no *NotOwnerError
	return errors.As(err, &nl) || errors.As(err, &no) || errors.Is(err, actors.ErrRetry) ||
		errors.Is(err, actors.ErrOutcomeUnknown) || errors.Is(err, actors.ErrStopped) || errors.Is(err, actor.ErrDeadLetter)
}

// next returns the server after id in the directory, wrapping around.
func (c *Client) next(id uint64) uint64 {
	ids := c.Dir.IDs()
	if len(ids) == 0 {
		return 0
	}
	for _, x := range ids {
		if x > id {
			return x
		}
	}
	return ids[0]
}

// onLeader sends msg to the leader, found by following redirects, until
// it gets an answer whose error (errOf) is not retryable or Patience runs
// out.
func onLeader[T any](c *Client, msg any, errOf func(T) error) (T, error) {
	var zero T
	target := c.leader
	if c.Dir.Get(target) == nil {
		target = c.next(0)
	}
	deadline := time.Now().Add(c.Patience)
	var last error = errNoServer
	for time.Now().Before(deadline) {
		pid := c.Dir.Get(target)
		if pid == nil {
			target = c.next(target)
			if target == 0 {
				return zero, errNoServer
			}
			continue
		}
		res, err := actors.Request[T](c.Root, pid, msg, requestTimeout)
		if err == nil {
			err = errOf(res)
		}
		if err == nil || !retryable(err) {
			c.leader = target
			return res, err
		}
		last = err
		var nl *actors.NotLeaderError
		if errors.As(err, &nl) && nl.Leader != 0 && nl.Leader != target && c.Dir.Get(nl.Leader) != nil {
			target = nl.Leader // a redirect: go there at once
			continue
		}
		target = c.next(target)
		time.Sleep(20 * time.Millisecond) // back off: no leader yet, or a change in progress
	}
	return zero, fmt.Errorf("topics: %T not answered within %v: %w", msg, c.Patience, last)
}

// Propose replicates cmd through the leader and returns the index it was
// applied at, or the error that refused it (the table's, or the node's).
func (c *Client) Propose(cmd Command) (uint64, error) {
	c.seq++
	p := &actors.Propose{Data: cmd.Encode(), ClientID: c.ID, Sequence: c.seq}
	res, err := onLeader(c, p, func(r *actors.ProposeResponse) error { return r.Err })
	if err != nil {
		return 0, err
	}
	if e, ok := res.Result.(error); ok {
		return res.Index, e
	}
	return res.Index, nil
}

// Status returns the leader's status.
func (c *Client) Status() (*actors.Status, error) {
	return onLeader(c, &actors.GetStatus{}, func(s *actors.Status) error {
		if s.Leader != s.ID {
			return &actors.NotLeaderError{Leader: s.Leader, LeaderAddress: s.LeaderAddress}
		}
		return nil
	})
}

// ChangeConfig asks the leader to make change to its current configuration
// and waits until the new one is committed.
func (c *Client) ChangeConfig(change func(cc *messages.ClusterConfig)) (uint64, error) {
	st, err := c.Status()
	if err != nil {
		return 0, err
	}
	cc := &messages.ClusterConfig{
		Voters:   slices.Clone(st.Config.GetVoters()),
		Learners: slices.Clone(st.Config.GetLearners()),
		Settings: st.Config.GetSettings(),
	}
	change(cc)
	res, err := onLeader(c, &actors.ChangeConfig{Config: cc}, func(r *actors.ChangeConfigResponse) error { return r.Err })
	if err != nil {
		return 0, fmt.Errorf("topics: change configuration to voters %v learners %v: %w",
			memberIDs(cc.Voters), memberIDs(cc.Learners), err)
	}
	return res.Index, nil
}

// TransferLeadership asks the leader to hand over to server to and returns
// the new leader.
func (c *Client) TransferLeadership(to uint64) (uint64, error) {
	res, err := onLeader(c, &actors.TransferLeadership{To: to}, func(r *actors.TransferLeadershipResponse) error { return r.Err })
	if err != nil {
		return 0, err
	}
	c.leader = res.Leader
	return res.Leader, nil
}

// Route answers "which server do I send topic to?" with a linearizable
// Read: any server answers, once it has applied everything committed when
// the read began, so the answer is never older than the last completed
// reassignment.
func (c *Client) Route(topic string) (Assignment, error) {
	return c.read(topic, OwnerQuery{Topic: topic})
}

// Table reads the whole assignment table linearizably on server id.
func (c *Client) Table(id uint64) ([]Assignment, error) {
	pid := c.Dir.Get(id)
	if pid == nil {
		return nil, fmt.Errorf("topics: server %d: %w", id, errNoServer)
	}
	deadline := time.Now().Add(c.Patience)
	for {
		table, err := readResult[[]Assignment](c.Root.RequestFuture(pid, &actors.Read{Query: TableQuery{}}, requestTimeout).Result())
		// A read in flight while leadership moves is refused (ErrRetry):
		// the answer is not known to be current, so ask again.
		if err == nil || !retryable(err) || time.Now().After(deadline) {
			return table, err
		}
		time.Sleep(20 * time.Millisecond) // back off
	}
}

func (c *Client) read(topic string, q any) (Assignment, error) {
	deadline := time.Now().Add(c.Patience)
	target := c.next(0)
	var last error = errNoServer
	for target != 0 && time.Now().Before(deadline) {
		if pid := c.Dir.Get(target); pid != nil {
			a, err := readResult[Assignment](c.Root.RequestFuture(pid, &actors.Read{Query: q}, requestTimeout).Result())
			if err == nil || errors.Is(err, ErrNoTopic) {
				return a, err
			}
			last = err
		}
		target = c.next(target)
		time.Sleep(20 * time.Millisecond) // back off, then ask another server
	}
	return Assignment{}, fmt.Errorf("topics: route %q: %w", topic, last)
}

// Publish routes topic, then sends payload to its owner; a broker that no
// longer owns it says who does, and the client follows.
func (c *Client) Publish(topic, payload string) (*PublishResponse, error) {
	deadline := time.Now().Add(c.Patience)
	a, err := c.Route(topic)
	if err != nil {
		return nil, err
	}
	owner := a.Owner
	for time.Now().Before(deadline) {
		pid := c.Dir.Get(owner)
		if pid == nil {
			return nil, fmt.Errorf("topics: publish to %q: owner %s is not in the directory", topic, ownerName(owner))
		}
		res, err := actors.Request[*PublishResponse](c.Root, pid, &Publish{Topic: topic, Payload: payload}, requestTimeout)
		if err == nil {
			err = res.Err
		}
		if err == nil {
			return res, nil
		}
		var no *NotOwnerError
		if errors.As(err, &no) && no.Owner != 0 {
			owner = no.Owner
			continue
		}
		if !retryable(err) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("topics: publish to %q: no owner accepted within %v", topic, c.Patience)
}
