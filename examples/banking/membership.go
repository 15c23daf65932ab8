package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"
)

// demoMembership starts 3 servers, runs transfers, starts a 4th server
// with --join and adds it as a voter (it is promoted once caught up), then
// removes the leader, stops its process, and checks that the remaining
// three agree and no money was created or lost. A nil error means every
// check passed.
func demoMembership(ctx context.Context, o demoOptions, out io.Writer) (err error) {
	d, say, err := startDemo(ctx, o, "banking-membership-", out)
	if err != nil {
		return err
	}
	defer d.close(&err)
	c, admin, names, leader := d.c, d.admin, d.names, d.leader
	want := int64(o.accounts) * o.initial

	var okN, failedN atomic.Int64
	finish, err := startClients(c.apis(), o.clients, func(w, i int, cl *Client) {
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
	})
	if err != nil {
		return err
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
