package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const clientUsage = `usage: banking client [--servers host:port,...] [--timeout 30s] COMMAND

commands:
  open NAME [AMOUNT]        open an account (with an opening balance, default 0)
  deposit NAME AMOUNT       add AMOUNT to NAME
  withdraw NAME AMOUNT      take AMOUNT from NAME (refused if it would overdraw)
  transfer FROM TO AMOUNT   move AMOUNT from FROM to TO, atomically (refused if FROM lacks funds)
  balance [NAME]            one balance, or every balance and their total (linearizable)
  status                    every server's view: role, term, leader, indices
  add-server ID RAFT_ADDR [--learner] [--expect INDEX]
                            add a server started with 'banking server --join': a learner
                            first, promoted to voter once it has caught up
  remove-server ID [--expect INDEX]
                            remove a server (the leader too: it hands over first)
`

// runClient is `banking client`. Exit codes: 0 done, 1 refused or failed,
// 2 bad usage.
func runClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banking client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clientUsage, "\nflags:\n"); fs.PrintDefaults() }
	servers := fs.String("servers", "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003", "the servers' client API addresses")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (a command's outcome is then unknown)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, clientUsage)
		return 2
	}
	c, err := NewClient(splitList(*servers))
	if err != nil {
		fmt.Fprintf(stderr, "banking client: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	code, err := clientCommand(ctx, c, fs.Args(), stdout)
	if err != nil {
		fmt.Fprintf(stderr, "banking client: %v\n", err)
	}
	return code
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// usageError marks bad command lines (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parseAmount(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, usageError{fmt.Sprintf("amount %q is not a whole number", s)}
	}
	return v, nil
}

// parseCommand turns CLI words into a ledger command.
func parseCommand(args []string) (Command, error) {
	want := func(n int, form string) error {
		if len(args) != n {
			return usageError{fmt.Sprintf("%s takes %d argument(s): %s", args[0], n-1, form)}
		}
		return nil
	}
	var cmd Command
	var err error
	switch args[0] {
	case OpOpen:
		if len(args) != 2 && len(args) != 3 {
			return cmd, usageError{"open takes NAME [AMOUNT]"}
		}
		cmd = Command{Op: OpOpen, Account: args[1]}
		if len(args) == 3 {
			cmd.Amount, err = parseAmount(args[2])
		}
	case OpDeposit, OpWithdraw:
		if err := want(3, "NAME AMOUNT"); err != nil {
			return cmd, err
		}
		cmd = Command{Op: args[0], Account: args[1]}
		cmd.Amount, err = parseAmount(args[2])
	case OpTransfer:
		if err := want(4, "FROM TO AMOUNT"); err != nil {
			return cmd, err
		}
		cmd = Command{Op: OpTransfer, From: args[1], To: args[2]}
		cmd.Amount, err = parseAmount(args[3])
	default:
		return cmd, usageError{fmt.Sprintf("unknown command %q: want open, deposit, withdraw, transfer, balance or status", args[0])}
	}
	if err != nil {
		return cmd, err
	}
	if err := cmd.Validate(); err != nil {
		return cmd, usageError{err.Error()}
	}
	return cmd, nil
}

func clientCommand(ctx context.Context, c *Client, args []string, out io.Writer) (int, error) {
	switch args[0] {
	case "status":
		if len(args) != 1 {
			return 2, usageError{"status takes no argument"}
		}
		printStatus(ctx, c, c.servers, out)
		return 0, nil
	case "balance":
		switch len(args) {
		case 1:
			b, err := c.Balances(ctx)
			if err != nil {
				return 1, err
			}
			printBalances(out, b.Balances)
			return 0, nil
		case 2:
			if err := validName("account", args[1]); err != nil {
				return 2, err
			}
			b, err := c.Balance(ctx, args[1])
			if err != nil {
				return 1, err
			}
			fmt.Fprintf(out, "%s: %d (linearizable read at index %d on node %d)\n", b.Account, b.Balance, b.ReadIndex, b.Node)
			return 0, nil
		default:
			return 2, usageError{"balance takes [NAME]"}
		}
	case "add-server", "remove-server":
		return memberCommand(ctx, c, args, out)
	}
	cmd, err := parseCommand(args)
	if err != nil {
		return 2, err
	}
	res, err := c.Command(ctx, cmd)
	if err != nil {
		return 1, err
	}
	r := res.Result
	if !r.OK() {
		return 1, fmt.Errorf("%s refused: %s", cmd.Op, r.Message)
	}
	switch cmd.Op {
	case OpOpen:
		fmt.Fprintf(out, "opened account %s with balance %d", cmd.Account, r.Balances[cmd.Account])
	case OpDeposit:
		fmt.Fprintf(out, "deposited %d into %s: balance %d", cmd.Amount, cmd.Account, r.Balances[cmd.Account])
	case OpWithdraw:
		fmt.Fprintf(out, "withdrew %d from %s: balance %d", cmd.Amount, cmd.Account, r.Balances[cmd.Account])
	case OpTransfer:
		fmt.Fprintf(out, "transferred %d from %s to %s: %s %d, %s %d", cmd.Amount, cmd.From, cmd.To,
			cmd.From, r.Balances[cmd.From], cmd.To, r.Balances[cmd.To])
	}
	fmt.Fprintf(out, " (log index %d, term %d, client %d seq %d)\n", res.Index, res.Term, c.ID(), c.seq)
	return 0, nil
}

// memberCommand runs add-server and remove-server.
func memberCommand(ctx context.Context, c *Client, args []string, out io.Writer) (int, error) {
	var pos []string
	learner := false
	var expected uint64
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "--learner", "-learner":
			learner = true
		case "--expect", "-expect":
			if i+1 == len(args) {
				return 2, usageError{"--expect takes a configuration index"}
			}
			v, err := strconv.ParseUint(args[i+1], 10, 64)
			if err != nil {
				return 2, usageError{fmt.Sprintf("--expect %q is not an index", args[i+1])}
			}
			expected = v
			i++
		default:
			pos = append(pos, args[i])
		}
	}
	var id uint64
	if len(pos) > 0 {
		v, err := strconv.ParseUint(pos[0], 10, 64)
		if err != nil || v == 0 {
			return 2, usageError{fmt.Sprintf("server id %q is not a non-zero number", pos[0])}
		}
		id = v
	}
	var res *MemberResponse
	var err error
	switch {
	case args[0] == "add-server" && len(pos) == 2:
		res, err = c.AddServer(ctx, id, pos[1], !learner, expected)
	case args[0] == "remove-server" && len(pos) == 1 && !learner:
		res, err = c.RemoveServer(ctx, id, expected)
	case args[0] == "add-server":
		return 2, usageError{"add-server takes ID RAFT_ADDR [--learner] [--expect INDEX]"}
	default:
		return 2, usageError{"remove-server takes ID [--expect INDEX]"}
	}
	if err != nil {
		return 1, err
	}
	ids := func(ms []MemberInfo) []uint64 {
		var out []uint64
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	fmt.Fprintf(out, "%s %d: configuration %d committed: voters %v learners %v\n", args[0], id, res.ConfigIndex, ids(res.Voters), ids(res.Learners))
	return 0, nil
}

func printBalances(out io.Writer, b map[string]int64) {
	names := make([]string, 0, len(b))
	var total int64
	for n, v := range b {
		names = append(names, n)
		total += v
	}
	slices.Sort(names)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, n := range names {
		fmt.Fprintf(tw, "%s\t%d\t\n", n, b[n])
	}
	fmt.Fprintf(tw, "total (%d accounts)\t%d\t\n", len(names), total)
	tw.Flush()
}

// printStatus prints every server's status, one line each.
func printStatus(ctx context.Context, c *Client, servers []string, out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	var lead *StatusResponse
	fmt.Fprintln(tw, "NODE\tAPI\tROLE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tLAST\tPEERS")
	for _, s := range servers {
		st, err := c.Status(ctx, s)
		if err != nil {
			fmt.Fprintf(tw, "?\t%s\tunreachable\t-\t-\t-\t-\t-\t%v\n", s, err)
			continue
		}
		var peers []string
		for id, state := range st.Peers {
			peers = append(peers, fmt.Sprintf("%d:%s", id, state))
		}
		slices.Sort(peers)
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", st.ID, st.APIAddr, st.Role, st.Term, st.Leader,
			st.Commit, st.Applied, st.LastIndex, strings.Join(peers, " "))
		if st.Role == "leader" {
			lead = st
		}
	}
	tw.Flush()
	if lead != nil {
		fmt.Fprintf(out, "configuration %d (the leader's view): voters %s; learners %s\n", lead.ConfigIndex, membersWithLag(lead.Members), membersWithLag(lead.Learners))
	}
}

// membersWithLag renders members as "1 2 4(lag 12)".
func membersWithLag(ms []MemberInfo) string {
	if len(ms) == 0 {
		return "none"
	}
	var parts []string
	for _, m := range ms {
		if m.Lag != nil && *m.Lag > 0 {
			parts = append(parts, fmt.Sprintf("%d(lag %d)", m.ID, *m.Lag))
		} else {
			parts = append(parts, fmt.Sprint(m.ID))
		}
	}
	return strings.Join(parts, " ")
}
