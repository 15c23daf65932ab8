package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// runDemoMembership is `banking demo-membership`: membership changed at
// run time through the client CLI's API, under load.
func runDemoMembership(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banking demo-membership", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := demoOptions{}
	fs.IntVar(&o.clients, "clients", 4, "concurrent clients doing transfers")
	fs.IntVar(&o.accounts, "accounts", 6, "accounts opened before the transfers")
	fs.Int64Var(&o.initial, "initial", 1000, "opening balance of each account")
	fs.DurationVar(&o.tick, "tick", 50*time.Millisecond, "the servers' Raft tick")
	fs.BoolVar(&o.keep, "keep", false, "keep the data directories and logs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || o.clients < 1 || o.accounts < 2 || o.initial < 1 || o.initial > MaxAmount || o.tick <= 0 {
		fmt.Fprintln(stderr, "banking demo-membership: want no arguments, --clients >= 1, --accounts >= 2, --initial from 1 to 10^12, a positive --tick")
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "banking demo-membership: cannot find this executable to start the servers: %v\n", err)
		return 1
	}
	o.exe = exe
	if err := demoMembership(context.Background(), o, stdout); err != nil {
		fmt.Fprintf(stderr, "banking demo-membership: %v\n", err)
		return 1
	}
	return 0
}

// demoMembership starts 3 servers, runs transfers, starts a 4th server
// with --join and adds it as a voter (it is promoted once caught up), then
// removes the leader, stops its process, and checks that the remaining
// three agree and no money was created or lost. A nil error means every
// check passed.
func demoMembership(ctx context.Context, o demoOptions, out io.Writer) (err error) {
	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	dir, err := os.MkdirTemp("", "banking-membership-")
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
		say("started node %d: raft %s, api %s", id, c.nodes[id].raft, c.nodes[id].api)
	}
	leader, err := c.waitLeader(ctx, c.ids, 20*time.Second)
	if err != nil {
		return err
	}
	say("node %d leads", leader)
	admin, err := NewClient(c.apis())
	if err != nil {
		return err
	}
	names := make([]string, o.accounts)
	for i := range names {
		names[i] = fmt.Sprintf("acct-%02d", i)
		if err := openAccount(ctx, admin, names[i], o.initial); err != nil {
			return err
		}
	}
	want := int64(o.accounts) * o.initial

	var okN, failedN atomic.Int64
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
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from, to := (w+i)%len(names), (w+i+1)%len(names)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cl.Command(cctx, Command{Op: OpTransfer, From: names[from], To: names[to], Amount: 1})
				cancel()
				var unknown *OutcomeUnknownError
				if err == nil {
					okN.Add(1)
				} else if !errors.As(err, &unknown) {
					failedN.Add(1)
				}
			}
		}()
	}
	finish := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer finish()
	say("%d clients are transferring money", o.clients)

	// Add a fourth server at run time.
	const newID = 4
	if err := c.addNode(newID); err != nil {
		return err
	}
	if err := c.start(newID); err != nil {
		return err
	}
	say("started node %d with --join: raft %s, api %s", newID, c.nodes[newID].raft, c.nodes[newID].api)
	st, err := admin.Status(ctx, c.nodes[leader].api)
	if err != nil {
		return err
	}
	say("$ banking client add-server %d %s --expect %d", newID, c.nodes[newID].raft, st.ConfigIndex)
	res, err := admin.AddServer(ctx, newID, c.nodes[newID].raft, true, st.ConfigIndex)
	if err != nil {
		return fmt.Errorf("add server %d: %w", newID, err)
	}
	say("configuration %d committed: voters %v (node %d joined as a learner and was promoted once caught up)", res.ConfigIndex, memberIDs(res.Voters), newID)
	if err := c.waitCaughtUp(ctx, newID, leader, 30*time.Second); err != nil {
		return err
	}
	say("node %d caught up (%d transfers so far)", newID, okN.Load())

	// Remove the leader.
	leader, err = c.waitLeader(ctx, c.ids, 20*time.Second)
	if err != nil {
		return err
	}
	say("$ banking client remove-server %d   (the leader)", leader)
	res, err = admin.RemoveServer(ctx, leader, 0)
	if err != nil {
		return fmt.Errorf("remove server %d: %w", leader, err)
	}
	say("configuration %d committed: voters %v", res.ConfigIndex, memberIDs(res.Voters))
	removed := leader
	if err := c.poll(ctx, 20*time.Second, fmt.Sprintf("node %d knows it was removed", removed), []uint64{removed}, func() (bool, string) {
		s, err := admin.Status(ctx, c.nodes[removed].api)
		if err != nil {
			return false, err.Error()
		}
		return s.Removed, fmt.Sprintf("role %s removed %v", s.Role, s.Removed)
	}); err != nil {
		return err
	}
	if err := c.stop(removed); err != nil {
		return err
	}
	c.forget(removed)
	say("node %d reports it was removed; its process is stopped", removed)
	leader, err = c.waitLeader(ctx, c.ids, 20*time.Second)
	if err != nil {
		return err
	}
	say("node %d leads the cluster %v", leader, c.ids)
	sleep(ctx, time.Second) // let the workload run on the new membership: pacing, not waiting for an event
	finish()
	say("clients stopped: %d transfers done, %d failed", okN.Load(), failedN.Load())

	final, err := admin.Balances(ctx)
	if err != nil {
		return fmt.Errorf("read the final balances: %w", err)
	}
	var total int64
	for _, b := range final.Balances {
		total += b
	}
	if err := c.waitConverged(ctx, 20*time.Second); err != nil {
		return err
	}
	for _, id := range c.ids {
		stale, err := admin.StaleBalances(ctx, c.nodes[id].api)
		if err != nil {
			return fmt.Errorf("node %d's local balances: %w", id, err)
		}
		if !equalBalances(stale.Balances, final.Balances) {
			return fmt.Errorf("node %d's balances %v differ from the linearizable read %v", id, stale.Balances, final.Balances)
		}
	}
	say("status of every member:")
	printStatus(ctx, admin, c.apis(), out)
	if total != want {
		return fmt.Errorf("conservation FAILED: total %d, want %d", total, want)
	}
	if failedN.Load() > 0 {
		return fmt.Errorf("%d transfers failed with an error", failedN.Load())
	}
	say("conservation check passed: total %d; every member holds the same balances", total)
	if err := c.stopAll(); err != nil {
		return err
	}
	say("all servers stopped; membership demo passed")
	return nil
}

func memberIDs(ms []MemberInfo) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	slices.Sort(out)
	return out
}
