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
	if err := demo(context.Background(), o, stdout); err != nil {
		fmt.Fprintf(stderr, "banking demo: %v\n", err)
		return 1
	}
	return 0
}

// demo runs the demo; a nil error means every check passed.
func demo(ctx context.Context, o demoOptions, out io.Writer) (err error) {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "banking-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			say("data directories and server logs kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	c, err := newLocalCluster(dir, o.exe, o.env, 3, o.tick)
	if err != nil {
		return err
	}
	defer func() {
		if e := c.stopAll(); e != nil && err == nil {
			err = e
		}
	}()
	for _, id := range c.ids {
		if err := c.start(id); err != nil {
			return err
		}
		say("started node %d (pid %d): raft %s, api %s, data %s", id, c.pid(id), c.nodes[id].raft, c.nodes[id].api, c.nodes[id].data)
	}
	leader, err := c.waitLeader(ctx, c.ids, 20*time.Second)
	if err != nil {
		return err
	}
	say("node %d leads", leader)

	// Open the accounts.
	setup, err := NewClient(c.apis())
	if err != nil {
		return err
	}
	names := make([]string, o.accounts)
	for i := range names {
		names[i] = fmt.Sprintf("acct-%02d", i)
		if err := openAccount(ctx, setup, names[i], o.initial); err != nil {
			return err
		}
	}
	want := int64(o.accounts) * o.initial
	say("opened %d accounts with %d each: total %d", o.accounts, o.initial, want)

	// Concurrent transfers.
	var okN, refusedN, unknownN, failedN atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range o.clients {
		cl, err := NewClient(c.apis())
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
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
			}
		}()
	}
	say("%d clients are transferring money between random accounts", o.clients)
	finish := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer finish()

	sleep(ctx, o.duration/3) // let the workload run a while: not waiting for an event
	leader, err = c.waitLeader(ctx, c.ids, 10*time.Second)
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
