package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The verifier records a concurrent history of ledger operations while the
// leader is killed (SIGKILL) and restarted, and checks with porcupine that
// it is linearizable against a sequential bank model: a transfer or
// withdrawal succeeds exactly when the funds are there, reported balances
// match, and a read returns the state. Operations whose outcome the client
// never learned are given an open end (they may take effect at any point
// after their call, or never); reads that never completed are dropped.

// maxVerifyAccounts bounds the accounts of a verification run (the model's
// state is a fixed-size array, so it compares with ==).
const maxVerifyAccounts = 8

type bankState [maxVerifyAccounts]int64

// verifyInput is one operation. Op is OpTransfer, OpDeposit, OpWithdraw or
// "read" (every balance).
type verifyInput struct {
	Op       string
	From, To int // account indices (From for deposit and withdraw)
	Amount   int64
}

// verifyOutput is what the client saw.
type verifyOutput struct {
	Unknown  bool // the outcome was never learned
	OK       bool
	From, To int64     // the reported balances of the named accounts
	Read     bankState // a read's answer
}

// bankModel is the sequential specification.
func bankModel(names []string) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return bankState{} }, // replaced by the recorded initial state, see verifyHistory
		Step: func(st, in, out any) (bool, any) {
			s, i, o := st.(bankState), in.(verifyInput), out.(verifyOutput)
			if i.Op == "read" {
				return s == o.Read, s
			}
			next := s
			legal := true
			switch i.Op {
			case OpTransfer:
				legal = s[i.From] >= i.Amount
				if legal {
					next[i.From] -= i.Amount
					next[i.To] += i.Amount
				}
			case OpDeposit:
				next[i.From] += i.Amount
			case OpWithdraw:
				legal = s[i.From] >= i.Amount
				if legal {
					next[i.From] -= i.Amount
				}
			}
			if o.Unknown {
				return true, next
			}
			if o.OK != legal {
				return false, s
			}
			shown := next
			if !legal {
				shown = s
			}
			if shown[i.From] != o.From || i.Op == OpTransfer && shown[i.To] != o.To {
				return false, s
			}
			return true, next
		},
		Hash: func(st any) uint64 {
			h := fnv.New64a()
			s := st.(bankState)
			for _, v := range s {
				var b [8]byte
				for k := range b {
					b[k] = byte(v >> (8 * k))
				}
				h.Write(b[:])
			}
			return h.Sum64()
		},
		DescribeOperation: func(in, out any) string {
			i, o := in.(verifyInput), out.(verifyOutput)
			var call string
			switch i.Op {
			case "read":
				return fmt.Sprintf("read() → %v", o.Read[:len(names)])
			case OpTransfer:
				call = fmt.Sprintf("transfer(%s→%s, %d)", names[i.From], names[i.To], i.Amount)
			default:
				call = fmt.Sprintf("%s(%s, %d)", i.Op, names[i.From], i.Amount)
			}
			switch {
			case o.Unknown:
				return call + " → unknown"
			case o.OK:
				return fmt.Sprintf("%s → ok %d %d", call, o.From, o.To)
			default:
				return fmt.Sprintf("%s → refused %d %d", call, o.From, o.To)
			}
		},
		DescribeState: func(st any) string {
			s := st.(bankState)
			return fmt.Sprint(s[:len(names)])
		},
	}
}

// verifyOptions configure a verification run.
type verifyOptions struct {
	clients  int
	accounts int
	initial  int64
	duration time.Duration
	kills    int
	tick     time.Duration
	check    time.Duration // porcupine's time budget
	dir      string        // "" = a temporary directory
	exe      string
	env      []string
	log      func(format string, args ...any)
}

// verifyReport summarises a run.
type verifyReport struct {
	Ops, Reads, Writes, Unknown, DroppedReads int
	Kills, Retries                            int
	CheckTime                                 time.Duration
	Result                                    porcupine.CheckResult
	Visualization                             string // HTML file of a failed check
	Dir                                       string
}

func (r verifyReport) String() string {
	return fmt.Sprintf("history of %d operations (%d writes, %d reads, %d with unknown outcome; %d unanswered reads dropped; %d retried attempts) across %d leader kills; porcupine: %s in %v",
		r.Ops, r.Writes, r.Reads, r.Unknown, r.DroppedReads, r.Retries, r.Kills, r.Result, r.CheckTime.Round(time.Millisecond))
}

// verifyRun starts a cluster, records a history while killing leaders and
// checks it. The error reports a run that could not be made or checked, or
// a history that is not linearizable.
func verifyRun(ctx context.Context, o verifyOptions) (rep verifyReport, err error) {
	if o.accounts < 2 || o.accounts > maxVerifyAccounts {
		return rep, fmt.Errorf("accounts = %d: want 2 to %d", o.accounts, maxVerifyAccounts)
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "banking-verify-"); err != nil {
			return rep, err
		}
		defer func() {
			if err == nil {
				os.RemoveAll(dir)
			}
		}()
	}
	rep.Dir = dir
	c, err := newLocalCluster(dir, o.exe, o.env, 3, o.tick)
	if err != nil {
		return rep, err
	}
	defer func() {
		if e := c.stopAll(); e != nil && err == nil {
			err = e
		}
	}()
	for _, id := range c.ids {
		if err := c.start(id); err != nil {
			return rep, err
		}
	}
	if _, err := c.waitLeader(ctx, c.ids, 20*time.Second); err != nil {
		return rep, err
	}
	setup, err := NewClient(c.apis())
	if err != nil {
		return rep, err
	}
	names := make([]string, o.accounts)
	for i := range names {
		names[i] = fmt.Sprintf("v%d", i)
		if err := openAccount(ctx, setup, names[i], o.initial); err != nil {
			return rep, err
		}
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	toState := func(b map[string]int64) (bankState, error) {
		var s bankState
		if len(b) != len(names) {
			return s, fmt.Errorf("a read returned %d accounts, want %d", len(b), len(names))
		}
		for n, v := range b {
			i, ok := index[n]
			if !ok {
				return s, fmt.Errorf("a read returned an unknown account %q", n)
			}
			s[i] = v
		}
		return s, nil
	}
	initial, err := setup.Balances(ctx)
	if err != nil {
		return rep, fmt.Errorf("read the initial balances: %w", err)
	}
	init, err := toState(initial.Balances)
	if err != nil {
		return rep, err
	}
	o.log("cluster up, %d accounts with %d each; %d clients for %v, %d leader kills", o.accounts, o.initial, o.clients, o.duration, o.kills)

	// Record.
	start := time.Now()
	var mu sync.Mutex
	var history []porcupine.Operation
	var workErr error
	nextClient := o.clients // fresh porcupine client ids after an unknown outcome
	var clients []*Client
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range o.clients {
		cl, err := NewClient(c.apis())
		if err != nil {
			return rep, err
		}
		reader, err := NewClient(c.apis())
		if err != nil {
			return rep, err
		}
		clients = append(clients, cl, reader)
		wg.Add(1)
		go func() {
			defer wg.Done()
			pc := w
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				in := verifyInput{From: rng.IntN(len(names)), Amount: 1 + rng.Int64N(o.initial*6/10)}
				switch p := rng.IntN(10); {
				case p == 0:
					in.Op = "read"
				case p == 1:
					in.Op = OpDeposit
				case p == 2:
					in.Op = OpWithdraw
				default:
					in.Op = OpTransfer
					in.To = (in.From + 1 + rng.IntN(len(names)-1)) % len(names)
				}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				call := time.Since(start).Nanoseconds()
				use := cl
				if in.Op == "read" {
					// Reads go to a random server: followers serve them
					// through the leader's read index.
					use = reader
					use.prefer(c.apis()[rng.IntN(len(c.ids))])
				}
				out, err := verifyOp(cctx, use, names, in, toState)
				ret := time.Since(start).Nanoseconds()
				cancel()
				var unknown *OutcomeUnknownError
				var unavailable *UnavailableError
				mu.Lock()
				switch {
				case err == nil:
					history = append(history, porcupine.Operation{ClientId: pc, Input: in, Call: call, Output: out, Return: ret})
				case in.Op == "read" && (errors.As(err, &unavailable) || errors.As(err, &unknown)):
					rep.DroppedReads++ // no effect: nothing to check
				case errors.As(err, &unknown):
					history = append(history, porcupine.Operation{ClientId: pc, Input: in, Call: call, Output: verifyOutput{Unknown: true}, Return: math.MaxInt64})
					rep.Unknown++
					pc = nextClient
					nextClient++
				case errors.As(err, &unavailable):
					// never taken by a server: not applied, nothing to check
				default:
					if workErr == nil {
						workErr = fmt.Errorf("client %d: %s: %w", w, in.Op, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	finish := stopAndWait(stop, &wg)
	defer finish()
	for k := range o.kills {
		sleep(ctx, time.Until(start.Add(o.duration*time.Duration(k+1)/time.Duration(o.kills+1))))
		leader, err := c.waitLeader(ctx, c.ids, 20*time.Second)
		if err != nil {
			return rep, err
		}
		if err := c.kill(leader); err != nil {
			return rep, err
		}
		var others []uint64
		for _, id := range c.ids {
			if id != leader {
				others = append(others, id)
			}
		}
		next, err := c.waitLeader(ctx, others, 20*time.Second)
		if err != nil {
			return rep, err
		}
		if err := c.start(leader); err != nil {
			return rep, err
		}
		rep.Kills++
		o.log("t=%v: killed leader %d, node %d took over, %d restarted", time.Since(start).Round(time.Millisecond), leader, next, leader)
	}
	sleep(ctx, time.Until(start.Add(o.duration)))
	finish()
	if workErr != nil {
		return rep, workErr
	}

	// Check.
	for _, cl := range clients {
		rep.Retries += cl.Retries()
	}
	rep.Ops = len(history)
	for _, op := range history {
		if op.Input.(verifyInput).Op == "read" {
			rep.Reads++
		} else {
			rep.Writes++
		}
	}
	model := bankModel(names)
	model.Init = func() any { return init }
	t0 := time.Now()
	res, info := porcupine.CheckOperationsVerbose(model, history, o.check)
	rep.CheckTime, rep.Result = time.Since(t0), res
	switch res {
	case porcupine.Ok:
		return rep, nil
	case porcupine.Illegal:
		rep.Visualization = filepath.Join(dir, "history.html")
		if err := porcupine.VisualizePath(model, info, rep.Visualization); err != nil {
			rep.Visualization = "(visualization failed: " + err.Error() + ")"
		}
		return rep, fmt.Errorf("the history is NOT linearizable: see %s and the server logs in %s", rep.Visualization, dir)
	default:
		return rep, fmt.Errorf("porcupine could not decide within %v: the history of %d operations is too large for the budget (raise --check-time or lower --duration)", o.check, len(history))
	}
}

// verifyOp runs one operation and translates the answer for the model.
func verifyOp(ctx context.Context, cl *Client, names []string, in verifyInput, toState func(map[string]int64) (bankState, error)) (verifyOutput, error) {
	var out verifyOutput
	if in.Op == "read" {
		b, err := cl.Balances(ctx)
		if err != nil {
			return out, err
		}
		out.Read, err = toState(b.Balances)
		return out, err
	}
	cmd := Command{Op: in.Op, Account: names[in.From], Amount: in.Amount}
	if in.Op == OpTransfer {
		cmd = Command{Op: OpTransfer, From: names[in.From], To: names[in.To], Amount: in.Amount}
	}
	res, err := cl.Command(ctx, cmd)
	if err != nil {
		return out, err
	}
	r := res.Result
	switch r.Code {
	case CodeOK, CodeInsufficientFunds:
	default:
		return out, fmt.Errorf("unexpected result %s: %s", r.Code, r.Message)
	}
	out.OK = r.OK()
	from, to := cmd.Account, cmd.To
	if in.Op == OpTransfer {
		from = cmd.From
	}
	var ok1, ok2 bool
	out.From, ok1 = r.Balances[from]
	out.To, ok2 = r.Balances[to]
	if !ok1 || in.Op == OpTransfer && !ok2 {
		return out, fmt.Errorf("the result of %s does not report the balances: %+v", in.Op, r)
	}
	return out, nil
}

func runVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("banking verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := verifyOptions{}
	fs.IntVar(&o.clients, "clients", 6, "concurrent clients")
	fs.IntVar(&o.accounts, "accounts", 4, fmt.Sprintf("accounts (2 to %d; few accounts make more conflicts)", maxVerifyAccounts))
	fs.Int64Var(&o.initial, "initial", 100, "opening balance of each account")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the clients run")
	fs.IntVar(&o.kills, "kills", 4, "leader kills (SIGKILL, then restart), evenly spaced")
	fs.DurationVar(&o.tick, "tick", 50*time.Millisecond, "the servers' Raft tick")
	fs.DurationVar(&o.check, "check-time", 5*time.Minute, "porcupine's time budget")
	fs.StringVar(&o.dir, "dir", "", "directory for data and logs (default: a temporary one, removed on success)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || o.clients < 1 || o.accounts < 2 || o.accounts > maxVerifyAccounts || o.initial < 10 || o.initial > MaxAmount || o.duration <= 0 || o.kills < 0 || o.tick <= 0 || o.check <= 0 {
		fmt.Fprintf(stderr, "banking verify: want no arguments, --clients >= 1, --accounts from 2 to %d, --initial from 10 to 10^12, --kills >= 0, and positive durations\n", maxVerifyAccounts)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "banking verify: cannot find this executable to start the servers: %v\n", err)
		return 1
	}
	o.exe = exe
	o.log = func(format string, args ...any) { fmt.Fprintf(stdout, "verify: "+format+"\n", args...) }
	rep, err := verifyRun(context.Background(), o)
	if rep.Ops > 0 {
		o.log("%s", rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "banking verify: %v\n", strings.TrimSpace(err.Error()))
		return 1
	}
	o.log("linearizable: PASS")
	return 0
}
