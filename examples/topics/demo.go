package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilla-raft/flotilla/examples/internal/certs"
	"github.com/flotilla-raft/flotilla/examples/internal/procs"
	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// demoOptions configure the demo.
type demoOptions struct {
	exe   string   // the executable to run brokers with (this program)
	env   []string // its environment additions (the tests make the test binary act as main)
	dir   string   // data, logs and certificates
	tick  time.Duration
	grace time.Duration
	// rate is each producer's pause between messages.
	rate time.Duration
	// phase is how many more messages the producers get acknowledged
	// between two steps.
	phase   int
	timeout time.Duration // each step's wait
}

// demoResult holds the demo's figures.
type demoResult struct {
	Produced, Consumed int
	Rebalances         uint64
	Reown              time.Duration // from the SIGKILL until the victim's partitions are ready elsewhere
	Killed             uint64
	// ReownRemoved: from asking to remove broker Removed until its
	// partitions are ready elsewhere.
	ReownRemoved time.Duration
	Removed      uint64
	Retries      int
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("topics demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory for data, logs and certificates (default: a new temporary directory, removed after a pass)")
	tick := fs.Duration("tick", 50*time.Millisecond, "Raft tick of the brokers")
	grace := fs.Duration("grace", time.Second, "how long a broker may be unheard before its partitions move")
	phase := fs.Int("phase", 300, "how many messages the producers get acknowledged between two steps")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "topics demo: %v\n", err)
		return 1
	}
	keep := *dir != ""
	if !keep {
		if *dir, err = os.MkdirTemp("", "topics-demo-"); err != nil {
			fmt.Fprintf(stderr, "topics demo: %v\n", err)
			return 1
		}
	}
	o := demoOptions{exe: exe, dir: *dir, tick: *tick, grace: *grace, rate: 5 * time.Millisecond, phase: *phase, timeout: 30 * time.Second}
	res, err := demo(context.Background(), o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "topics demo: FAILED: %v\n(logs under %s)\n", err, *dir)
		return 1
	}
	fmt.Fprintf(stdout, "\ndemo passed: %d messages acknowledged, %d consumed, %d rebalances; partitions re-owned %v after broker %d was killed, %v after broker %d was removed (%d client retries)\n",
		res.Produced, res.Consumed, res.Rebalances, res.Reown.Round(time.Millisecond), res.Killed, res.ReownRemoved.Round(time.Millisecond), res.Removed, res.Retries)
	if !keep {
		os.RemoveAll(*dir)
	}
	return 0
}

// demoCluster is the demo's brokers as processes.
type demoCluster struct {
	o     demoOptions
	raft  map[uint64]string
	api   map[uint64]string
	procs map[uint64]*procs.Process
}

func newDemoCluster(o demoOptions, n int) (*demoCluster, error) {
	ports, err := testutil.FreePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &demoCluster{o: o, raft: map[uint64]string{}, api: map[uint64]string{}, procs: map[uint64]*procs.Process{}}
	for i := range n {
		id := uint64(i + 1)
		c.raft[id], c.api[id] = ports[2*i], ports[2*i+1]
	}
	if _, err := certs.Issue(filepath.Join(o.dir, "certs"), 1, c.raft, 24*time.Hour); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	return c, nil
}

// start starts broker id: a founder of a cluster of founders or, when
// founders is nil, a broker that waits to be added (--join).
func (c *demoCluster) start(id uint64, founders []uint64) error {
	ca, cert, key := certs.Files(filepath.Join(c.o.dir, "certs"), id)
	args := []string{"server", "--id", fmt.Sprint(id), "--raft", c.raft[id], "--api", c.api[id],
		"--data", filepath.Join(c.o.dir, fmt.Sprintf("broker%d", id)), "--tick", c.o.tick.String(), "--grace", c.o.grace.String(),
		"--ca", ca, "--cert", cert, "--key", key}
	if founders == nil {
		return c.run(id, append(args, "--join"))
	}
	var peers []string
	for _, f := range founders {
		if f != id {
			peers = append(peers, fmt.Sprintf("%d=%s/%s", f, c.raft[f], c.api[f]))
		}
	}
	return c.run(id, append(args, "--peers", strings.Join(peers, ",")))
}

// run starts broker id's process with args.
func (c *demoCluster) run(id uint64, args []string) error {
	p := &procs.Process{Exe: c.o.exe, Args: args, Env: c.o.env, LogFile: filepath.Join(c.o.dir, fmt.Sprintf("broker%d.log", id))}
	c.procs[id] = p
	return p.Start()
}

func (c *demoCluster) apis(ids ...uint64) []string {
	var out []string
	for _, id := range ids {
		out = append(out, c.api[id])
	}
	return out
}

func (c *demoCluster) stopAll() {
	var wg sync.WaitGroup
	for _, p := range c.procs {
		wg.Go(func() { _ = p.Stop() })
	}
	wg.Wait()
}

// learnsRemoved waits until broker id's status says it was removed.
func (c *demoCluster) learnsRemoved(ctx context.Context, cl *Client, id uint64) error {
	deadline := time.Now().Add(c.o.timeout)
	for {
		st, err := cl.Status(ctx, c.api[id])
		if err == nil && st.Removed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker %d did not learn that it was removed within %v (status %+v, %v)", id, c.o.timeout, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited fails once one of the running brokers has exited.
func (c *demoCluster) exited(except uint64) error {
	for id, p := range c.procs {
		if id == except {
			continue
		}
		if err := p.Exited(); err != nil {
			return fmt.Errorf("broker %d: %w", id, err)
		}
	}
	return nil
}

// waitTable polls the table (through cl) until ok accepts it, failing after
// the step's timeout or when a broker process exits.
func (c *demoCluster) waitTable(ctx context.Context, cl *Client, what string, victim uint64, ok func(*View) bool) (*View, error) {
	deadline := time.Now().Add(c.o.timeout)
	var last *View
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := cl.Table(rctx)
		cancel()
		if err == nil {
			last = v
			if ok(v) {
				return v, nil
			}
		}
		if err := c.exited(victim); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			if last != nil {
				printTable(&sb, last)
			}
			return nil, fmt.Errorf("%s: not within %v (last error %v); last table:\n%s", what, c.o.timeout, err, sb.String())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settled: every partition is ready, owned and followed by live brokers
// among ids, each of which owns some.
func settled(v *View, ids []uint64, partitions int) bool {
	if len(v.Partitions) != partitions {
		return false
	}
	owned := map[uint64]int{}
	for _, p := range v.Partitions {
		if !p.Ready || !slices.Contains(ids, p.Owner) || !slices.Contains(ids, p.Follower) {
			return false
		}
		owned[p.Owner]++
	}
	lo, hi := partitions, 0
	for _, id := range ids {
		lo, hi = min(lo, owned[id]), max(hi, owned[id])
	}
	return hi-lo <= 1
}

// workload is the demo's producers and consumers.
type workload struct {
	cl   *Client
	mu   sync.Mutex
	acks []ack
	errs []error
	stop chan struct{}
	wg   sync.WaitGroup
}

// produce sends messages to topic (partition by sequence number) until
// stopped; each is retried (same producer id and seq) until acknowledged.
func (w *workload) produce(ctx context.Context, topic string, pause time.Duration) {
	w.wg.Go(func() {
		seqs := map[int]uint64{}
		for i := 1; ; i++ {
			select {
			case <-w.stop:
				return
			case <-time.After(pause):
			}
			payload := fmt.Sprintf("%s-%d", topic, i)
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			part := i % 3
			seqs[part]++
			req := ProduceRequest{Topic: topic, Partition: part, Producer: w.cl.Producer(), Seq: seqs[part], Payload: payload}
			a, err := w.cl.ProduceSeq(rctx, req)
			cancel()
			w.mu.Lock()
			if err != nil {
				w.errs = append(w.errs, fmt.Errorf("produce %s: %w", payload, err))
				w.mu.Unlock()
				return
			}
			w.acks = append(w.acks, ack{Producer: req.Producer, Seq: req.Seq, Payload: payload, ProduceResponse: *a})
			w.mu.Unlock()
		}
	})
}

// more waits until the producers have n more messages acknowledged, or
// fails after timeout (or at once when a producer gave up).
func (w *workload) more(n int, timeout time.Duration) error {
	target := w.count() + n
	deadline := time.Now().Add(timeout)
	for {
		w.mu.Lock()
		got, err := len(w.acks), errors.Join(w.errs...)
		w.mu.Unlock()
		switch {
		case err != nil:
			return err
		case got >= target:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the producers got %d of %d more messages acknowledged within %v", got-(target-n), n, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *workload) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// demo runs the scenario and checks it; see README.md.
func demo(ctx context.Context, o demoOptions, out io.Writer) (res demoResult, err error) {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%6.2fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	show := func(v *View) {
		var sb strings.Builder
		printTable(&sb, v)
		for _, l := range strings.Split(strings.TrimRight(sb.String(), "\n"), "\n") {
			fmt.Fprintf(out, "         %s\n", l)
		}
	}
	c, err := newDemoCluster(o, 4)
	if err != nil {
		return res, err
	}
	defer c.stopAll()
	founders := []uint64{1, 2, 3}
	fmt.Fprintf(out, "== 1. three brokers start (processes, mutual TLS on 127.0.0.1; data under %s)\n", o.dir)
	for _, id := range founders {
		if err := c.start(id, founders); err != nil {
			return res, err
		}
	}
	cl, err := NewClient(c.apis(1, 2, 3))
	if err != nil {
		return res, err
	}
	v, err := c.waitTable(ctx, cl, "the founders elect a leader and register", 0, func(v *View) bool { return v.Leader != 0 && len(v.Brokers) == 3 })
	if err != nil {
		return res, err
	}
	say("broker %d leads; brokers %v registered", v.Leader, slices.Sorted(maps.Keys(v.Brokers)))

	fmt.Fprintln(out, "== 2. producers create topics orders and clicks (3 partitions each); the leader assigns them")
	w := &workload{cl: cl, stop: make(chan struct{})}
	w.produce(ctx, "orders", o.rate)
	w.produce(ctx, "clicks", o.rate)
	stopped := false
	stopProducers := func() {
		if !stopped {
			stopped = true
			close(w.stop)
			w.wg.Wait()
		}
	}
	defer stopProducers()
	if v, err = c.waitTable(ctx, cl, "six partitions assigned and ready", 0, func(v *View) bool { return settled(v, founders, 6) }); err != nil {
		return res, err
	}
	show(v)
	cons, err := newConsumers(c.apis(1, 2, 3), v)
	if err != nil {
		return res, err
	}
	defer cons.stop()
	if err := w.more(o.phase, o.timeout); err != nil {
		return res, err
	}
	say("%d messages acknowledged so far", w.count())

	fmt.Fprintln(out, "== 3. a fourth broker starts with --join and is added through the membership API (learner, caught up, voter)")
	if err := c.start(4, nil); err != nil {
		return res, err
	}
	actx, cancel := context.WithTimeout(ctx, o.timeout)
	st, err := cl.AddBroker(actx, 4, c.raft[4], c.api[4])
	cancel()
	if err != nil {
		return res, fmt.Errorf("add broker 4: %w", err)
	}
	say("voters now %v", st.Voters)
	all := []uint64{1, 2, 3, 4}
	if v, err = c.waitTable(ctx, cl, "broker 4 gets partitions", 0, func(v *View) bool { return settled(v, all, 6) }); err != nil {
		return res, err
	}
	show(v)
	if err := w.more(o.phase, o.timeout); err != nil {
		return res, err
	}
	say("%d messages acknowledged so far", w.count())

	// The victim: a broker that owns partitions and does not lead (its
	// partitions then move without an election first).
	var victim uint64
	for _, p := range v.Partitions {
		if p.Owner != v.Leader {
			victim = p.Owner
			break
		}
	}
	var lost []string
	for _, p := range v.Partitions {
		if p.Owner == victim {
			lost = append(lost, p.Name)
		}
	}
	fmt.Fprintf(out, "== 4. broker %d, owner of %v, is SIGKILLed\n", victim, lost)
	killed := time.Now()
	if err := c.procs[victim].Kill(); err != nil {
		return res, err
	}
	rest := slices.DeleteFunc(slices.Clone(all), func(id uint64) bool { return id == victim })
	cl.SetServers(c.apis(rest...))
	if v, err = c.waitTable(ctx, cl, fmt.Sprintf("broker %d's partitions re-owned", victim), victim, func(v *View) bool { return settled(v, rest, 6) }); err != nil {
		return res, err
	}
	res.Reown, res.Killed = time.Since(killed), victim
	say("re-owned %v after the kill (grace %v)", res.Reown.Round(time.Millisecond), o.grace)
	show(v)
	if err := w.more(o.phase, o.timeout); err != nil {
		return res, err
	}

	moved := v.Partitions[0]
	to := rest[0]
	for _, id := range rest {
		if id != moved.Owner && id != moved.Follower {
			to = id
			break
		}
	}
	fmt.Fprintf(out, "== 5. the operator moves %s from broker %d to broker %d (topics move)\n", moved.Name, moved.Owner, to)
	mctx, cancel := context.WithTimeout(ctx, o.timeout)
	_, err = cl.Move(mctx, moved.Name, to)
	cancel()
	if err != nil {
		return res, fmt.Errorf("move: %w", err)
	}
	if v, err = c.waitTable(ctx, cl, "the moved partition is ready", victim, func(v *View) bool {
		p, _ := v.Get(moved.Name)
		return p.Ready && p.Epoch > moved.Epoch
	}); err != nil {
		return res, err
	}
	show(v)
	newP, _ := v.Get(moved.Name)
	if err := fenced(ctx, cl, c.api[moved.Owner], c.api[newP.Follower], moved, newP); err != nil {
		return res, err
	}
	say("fencing: broker %d (epoch %d) redirects a write for %s to broker %d (epoch %d); its follower refuses replication at epoch %d",
		moved.Owner, moved.Epoch, moved.Name, newP.Owner, newP.Epoch, moved.Epoch)
	if err := w.more(o.phase/2, o.timeout); err != nil {
		return res, err
	}

	// The leaver: a live broker other than the leader; its partitions move
	// at once, with no grace period.
	var leaver uint64
	for _, id := range rest {
		if id != v.Leader {
			leaver = id
		}
	}
	fmt.Fprintf(out, "== 6. broker %d leaves: the operator removes it through the membership API (topics remove)\n", leaver)
	removed := time.Now()
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	_, err = cl.RemoveBroker(rctx, leaver)
	cancel()
	if err != nil {
		return res, fmt.Errorf("remove broker %d: %w", leaver, err)
	}
	remaining := slices.DeleteFunc(slices.Clone(rest), func(id uint64) bool { return id == leaver })
	cl.SetServers(c.apis(remaining...))
	if v, err = c.waitTable(ctx, cl, fmt.Sprintf("broker %d's partitions moved", leaver), victim, func(v *View) bool { return settled(v, remaining, 6) }); err != nil {
		return res, err
	}
	res.Removed, res.ReownRemoved = leaver, time.Since(removed)
	say("broker %d removed; its partitions re-owned %v after the removal was asked", leaver, res.ReownRemoved.Round(time.Millisecond))
	show(v)
	if err := c.learnsRemoved(ctx, cl, leaver); err != nil {
		return res, err
	}
	say("broker %d learned that it was removed (it refuses requests); the operator stops it", leaver)
	if err := c.procs[leaver].Stop(); err != nil {
		return res, err
	}
	if err := w.more(o.phase/2, o.timeout); err != nil {
		return res, err
	}

	fmt.Fprintln(out, "== 7. the producers stop; the consumers read to the end; the checker runs")
	stopProducers()
	w.mu.Lock()
	perrs := errors.Join(w.errs...)
	acks := slices.Clone(w.acks)
	w.mu.Unlock()
	if perrs != nil {
		return res, perrs
	}
	ends := map[string]uint64{}
	for _, a := range acks {
		ends[a.Partition] = max(ends[a.Partition], a.Offset+1)
	}
	consumed, err := cons.drain(ends, o.timeout)
	if err != nil {
		return res, err
	}
	res.Produced = len(acks)
	for _, recs := range consumed {
		res.Consumed += len(recs)
	}
	if err := checkHistory(acks, consumed); err != nil {
		return res, fmt.Errorf("check failed:\n%w", err)
	}
	for _, id := range remaining {
		if st, err := cl.Status(ctx, c.api[id]); err == nil {
			res.Rebalances += st.Rebalances
		}
	}
	res.Retries = cl.Retries() + cons.cl.Retries()
	say("%d acknowledged, %d consumed: every acknowledged message consumed exactly once, in order; epochs never overlap", res.Produced, res.Consumed)
	return res, nil
}

// consumers follow every partition, one goroutine each, from offset 0.
type consumers struct {
	cl   *Client
	mu   sync.Mutex
	recs map[string][]Record
	errs []error
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newConsumers(servers []string, v *View) (*consumers, error) {
	cl, err := NewClient(servers)
	if err != nil {
		return nil, err
	}
	c := &consumers{cl: cl, recs: map[string][]Record{}, done: make(chan struct{})}
	// Every key first: a follower writes the map (under mu) while a later
	// one would still be added here.
	for _, p := range v.Partitions {
		c.recs[p.Name] = nil
	}
	for _, p := range v.Partitions {
		c.wg.Go(func() { c.follow(p.Name) })
	}
	return c, nil
}

func (c *consumers) follow(name string) {
	var next uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		res, err := c.cl.Consume(ctx, name, next, 200)
		cancel()
		select {
		case <-c.done:
			return
		default:
		}
		c.mu.Lock()
		if err != nil {
			c.errs = append(c.errs, fmt.Errorf("consume %s from %d: %w", name, next, err))
			c.mu.Unlock()
			return
		}
		c.recs[name] = append(c.recs[name], res.Records...)
		c.mu.Unlock()
		next += uint64(len(res.Records))
		if len(res.Records) == 0 {
			select {
			case <-c.done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (c *consumers) stop() {
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
}

// drain waits until every partition was consumed up to ends (the
// acknowledged offsets' end), then stops the consumers and returns what
// they read.
func (c *consumers) drain(ends map[string]uint64, timeout time.Duration) (map[string][]Record, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		behind := ""
		for name, end := range ends {
			if uint64(len(c.recs[name])) < end {
				behind = fmt.Sprintf("%s at %d of %d", name, len(c.recs[name]), end)
			}
		}
		err := errors.Join(c.errs...)
		c.mu.Unlock()
		if err != nil {
			c.stop()
			return nil, err
		}
		if behind == "" {
			break
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("consumers did not reach the acknowledged end within %v: %s", timeout, behind)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]Record{}
	for name, recs := range c.recs {
		out[name] = slices.Clone(recs)
	}
	return out, nil
}

// fenced shows fencing through the API after old moved to cur: the former
// owner answers a write for the partition with a redirect to the new one
// (its linearizable read sees the move), and the new follower refuses a
// replication at the old epoch (it was sealed at the new one).
func fenced(ctx context.Context, cl *Client, oldOwnerAPI, followerAPI string, old, cur Partition) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var pr ProduceResponse
	topic, idx := old.Topic, partIndex(old.Name)
	code, er, err := cl.once(rctx, "POST", oldOwnerAPI, pathProduce, nil,
		ProduceRequest{Topic: topic, Partition: idx, Producer: 1, Seq: 1, Payload: "from a stale client"}, &pr)
	if err != nil || code != 307 || er.Broker != cur.Owner {
		return fmt.Errorf("fencing: a write to the former owner of %s answered %d %+v %+v (err %v); want a redirect to broker %d", old.Name, code, er, pr, err, cur.Owner)
	}
	if cur.Follower == 0 {
		return nil
	}
	var rr ReplicateResponse
	code, er, err = cl.once(rctx, "POST", followerAPI, pathReplicate, nil,
		ReplicateRequest{Partition: old.Name, Epoch: old.Epoch, From: 0}, &rr)
	if err != nil || code != 409 || er.Error != errFenced {
		return fmt.Errorf("fencing: replication of %s at the old epoch %d answered %d %+v (err %v); want 409 fenced", old.Name, old.Epoch, code, er, err)
	}
	return nil
}
