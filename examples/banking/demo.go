package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// demoOptions configure the demo (flags of `banking demo`).
type demoOptions struct {
	clients  int
	accounts int
	initial  int64
	duration time.Duration
	tick     time.Duration
	keep     bool
	// membership runs demoMembership instead of demo.
	membership bool
	// exe and env start the servers (default: this executable).
	exe string
	env []string
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banking demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := demoOptions{}
	fs.IntVar(&o.clients, "clients", 8, "concurrent clients doing transfers")
	fs.IntVar(&o.accounts, "accounts", 10, "accounts opened before the transfers")
	fs.Int64Var(&o.initial, "initial", 1000, "opening balance of each account")
	fs.DurationVar(&o.duration, "duration", 8*time.Second, "how long the clients run (the leader is killed a third of the way in)")
	fs.DurationVar(&o.tick, "tick", 50*time.Millisecond, "the servers' Raft tick")
	fs.BoolVar(&o.keep, "keep", false, "keep the data directories and logs")
	fs.BoolVar(&o.membership, "membership", false, "the membership demo instead: a 4th server added at run time (learner, then voter), the leader removed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "banking demo: unexpected arguments %q\n", fs.Args())
		return 2
	case o.clients < 1 || o.accounts < 2 || o.initial < 1 || o.initial > MaxAmount || o.duration <= 0 || o.tick <= 0:
		fmt.Fprintln(stderr, "banking demo: want --clients >= 1, --accounts >= 2, --initial from 1 to 10^12, and positive --duration and --tick")
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "banking demo: cannot find this executable to start the servers: %v\n", err)
		return 1
	}
	o.exe = exe
	run := demo
	if o.membership {
		run = demoMembership
	}
	if err := run(context.Background(), o, stdout); err != nil {
		fmt.Fprintf(stderr, "banking demo: %v\n", err)
		return 1
	}
	return 0
}

// demo runs the demo; a nil error means every check passed.
func demo(ctx context.Context, o demoOptions, out io.Writer) (err error) {
	d, say, err := startDemo(ctx, o, "banking-demo-", out)
	if err != nil {
		return err
	}
	defer d.close(&err)
	c, setup, names, start := d.c, d.admin, d.names, d.start
	want := int64(o.accounts) * o.initial
	say("opened %d accounts with %d each: total %d", o.accounts, o.initial, want)

	// Concurrent transfers.
	var okN, refusedN, unknownN, failedN atomic.Int64
	rngs := make([]*rand.Rand, o.clients)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
	}
	finish, err := startClients(c.apis(), o.clients, func(w, _ int, cl *Client) {
		rng := rngs[w]
		from := rng.IntN(len(names))
		to := (from + 1 + rng.IntN(len(names)-1)) % len(names)
		amount := 1 + rng.Int64N(o.initial/2+1)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := cl.Command(cctx, Command{Op: OpTransfer, From: names[from], To: names[to], Amount: amount})
		cancel()
		var unknown *OutcomeUnknownError
		switch {
		case errors.As(err, &unknown):
			unknownN.Add(1)
		case err != nil:
			failedN.Add(1)
		case res.Result.OK():
			okN.Add(1)
		default:
			refusedN.Add(1)
		}
	})
	if err != nil {
		return err
	}
	defer finish()
	say("%d clients are transferring money between random accounts", o.clients)

	sleep(ctx, o.duration/3) // let the workload run a while: not waiting for an event
	leader, err := c.waitLeader(ctx, c.ids, 10*time.Second)
	if err != nil {
		return err
	}
	pid := c.pid(leader)
	if err := c.kill(leader); err != nil {
		return err
	}
	say("killed the leader, node %d (pid %d), with SIGKILL, after %d transfers", leader, pid, okN.Load()+refusedN.Load())
	var others []uint64
	for _, id := range c.ids {
		if id != leader {
			others = append(others, id)
		}
	}
	newLeader, err := c.waitLeader(ctx, others, 20*time.Second)
	if err != nil {
		return err
	}
	say("node %d leads now", newLeader)
	if err := c.start(leader); err != nil {
		return err
	}
	say("restarted node %d (pid %d) on its data directory %s", leader, c.pid(leader), c.nodes[leader].data)
	if err := c.waitCaughtUp(ctx, leader, newLeader, 30*time.Second); err != nil {
		return err
	}
	say("node %d caught up (%d transfers done so far)", leader, okN.Load()+refusedN.Load())

	sleep(ctx, time.Until(start.Add(o.duration)))
	finish()
	say("clients stopped: %d transfers done, %d refused for lack of funds, %d with unknown outcome, %d failed",
		okN.Load(), refusedN.Load(), unknownN.Load(), failedN.Load())

	// Final state.
	final, err := setup.Balances(ctx)
	if err != nil {
		return fmt.Errorf("read the final balances: %w", err)
	}
	say("final balances (linearizable read at index %d on node %d):", final.ReadIndex, final.Node)
	printBalances(out, final.Balances)
	var total int64
	negative := 0
	for _, b := range final.Balances {
		total += b
		if b < 0 {
			negative++
		}
	}
	if err := c.waitConverged(ctx, 20*time.Second); err != nil {
		return err
	}
	replicasAgree := true
	for _, id := range c.ids {
		st, err := setup.StaleBalances(ctx, c.nodes[id].api)
		if err != nil {
			return fmt.Errorf("node %d's local balances: %w", id, err)
		}
		if !equalBalances(st.Balances, final.Balances) {
			replicasAgree = false
			say("node %d's local balances differ from the linearizable read: %v", id, st.Balances)
		}
	}
	say("status of every node:")
	printStatus(ctx, setup, c.apis(), out)
	var problems []error
	if total != want || negative > 0 || len(final.Balances) != o.accounts {
		problems = append(problems, fmt.Errorf("conservation FAILED: total %d, want %d (%d negative balances, %d accounts)", total, want, negative, len(final.Balances)))
	} else {
		say("conservation check passed: total %d == %d, no account overdrawn", total, want)
	}
	if !replicasAgree {
		problems = append(problems, errors.New("replicas disagree on the balances"))
	} else {
		say("every replica holds the same balances")
	}
	if failedN.Load() > 0 {
		problems = append(problems, fmt.Errorf("%d transfers failed with an error", failedN.Load()))
	}
	if err := errors.Join(problems...); err != nil {
		return err
	}
	if err := c.stopAll(); err != nil {
		return err
	}
	say("all servers stopped; demo passed")
	return nil
}

// demoRun is a demo's cluster of 3 server processes, running, with a
// leader and the accounts opened.
type demoRun struct {
	c      *localCluster
	dir    string
	keep   bool
	say    func(format string, args ...any)
	start  time.Time
	leader uint64
	admin  *Client
	names  []string
}

// startDemo starts 3 servers in a fresh directory (named after pattern),
// waits for a leader and opens o.accounts accounts with o.initial each.
// say prints a line stamped with the time since the start. Call close
// (deferred) with the demo's error.
func startDemo(ctx context.Context, o demoOptions, pattern string, out io.Writer) (_ *demoRun, say func(string, ...any), err error) {
	d := &demoRun{start: time.Now(), keep: o.keep}
	d.say = func(format string, args ...any) {
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
	}
	if d.dir, err = os.MkdirTemp("", pattern); err != nil {
		return nil, d.say, err
	}
	defer func() {
		if err != nil {
			d.close(&err)
		}
	}()
	if d.c, err = newLocalCluster(d.dir, o.exe, o.env, 3, o.tick); err != nil {
		return d, d.say, err
	}
	c := d.c
	for _, id := range c.ids {
		if err := c.start(id); err != nil {
			return d, d.say, err
		}
		d.say("started node %d (pid %d): raft %s, api %s, data %s", id, c.pid(id), c.nodes[id].raft, c.nodes[id].api, c.nodes[id].data)
	}
	if d.leader, err = c.waitLeader(ctx, c.ids, 20*time.Second); err != nil {
		return d, d.say, err
	}
	d.say("node %d leads", d.leader)
	if d.admin, err = NewClient(c.apis()); err != nil {
		return d, d.say, err
	}
	d.names = make([]string, o.accounts)
	for i := range d.names {
		d.names[i] = fmt.Sprintf("acct-%02d", i)
		if err := openAccount(ctx, d.admin, d.names[i], o.initial); err != nil {
			return d, d.say, err
		}
	}
	return d, d.say, nil
}

// close stops every server (an error there becomes *errp if it is nil)
// and removes the directory, kept when the demo failed or asked to keep it.
func (d *demoRun) close(errp *error) {
	if d.c != nil {
		if e := d.c.stopAll(); e != nil && *errp == nil {
			*errp = e
		}
		d.c = nil
	}
	if d.dir == "" {
		return
	}
	if d.keep || *errp != nil {
		d.say("data directories and server logs kept in %s", d.dir)
	} else {
		os.RemoveAll(d.dir)
	}
	d.dir = ""
}

// startClients runs n clients (on the servers apis), each calling step
// with its number w and its step count i in a loop, until finish is
// called; finish waits for them.
func startClients(apis []string, n int, step func(w, i int, cl *Client)) (finish func(), err error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	finish = stopAndWait(stop, &wg)
	for w := range n {
		cl, err := NewClient(apis)
		if err != nil {
			finish()
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				step(w, i, cl)
			}
		}()
	}
	return finish, nil
}

// stopAndWait returns a function that closes stop (once) and waits for
// the workers of wg.
func stopAndWait(stop chan struct{}, wg *sync.WaitGroup) func() {
	return func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
}

// openAccount opens name with balance (a retried attempt is deduplicated
// by its client id and sequence, so it opens the account once).
func openAccount(ctx context.Context, cl *Client, name string, balance int64) error {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	res, err := cl.Command(cctx, Command{Op: OpOpen, Account: name, Amount: balance})
	if err != nil {
		return fmt.Errorf("open account %s: %w", name, err)
	}
	if !res.Result.OK() {
		return fmt.Errorf("open account %s: %s", name, res.Result.Message)
	}
	return nil
}

func equalBalances(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sleep waits d or until ctx ends: pacing a workload, never waiting for an
// event.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
