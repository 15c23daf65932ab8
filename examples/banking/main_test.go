package main

import (
	"bytes"
	"context"
	"flag"
	"math"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The process tests start real server processes: this test binary, re-run
// with runAsMain set, acts as the banking program (TestMain runs main's run
// instead of the tests).
const runAsMain = "BANKING_TEST_RUN_MAIN=1"

var (
	verifyDuration = flag.Duration("banking.verify-duration", 8*time.Second, "workload duration of TestVerifyLinearizable (make verify runs a long one)")
	verifyKills    = flag.Int("banking.verify-kills", 1, "leader kills in TestVerifyLinearizable")
)

func TestMain(m *testing.M) {
	if os.Getenv("BANKING_TEST_RUN_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testExe(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestDemo runs the demo end to end with a short workload: 3 server
// processes, clients, the leader killed with SIGKILL and restarted, the
// conservation check.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	o := demoOptions{clients: 4, accounts: 5, initial: 100, duration: 3 * time.Second, tick: 50 * time.Millisecond,
		exe: testExe(t), env: []string{runAsMain}}
	start := time.Now()
	err := demo(context.Background(), o, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo failed after %v: %v", time.Since(start), err)
	}
	for _, want := range []string{"killed the leader", "restarted node", "conservation check passed", "every replica holds the same balances", "demo passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
}

// TestVerifyLinearizable records a concurrent history of transfers,
// deposits, withdrawals and reads against 3 real server processes (Raft
// over the gRPC transport on loopback, Pebble on disk) while the leader is
// killed with SIGKILL and restarted, and checks it with porcupine. The
// bounded run takes about 10 s; `make verify` runs a long one
// (-banking.verify-duration, -banking.verify-kills).
func TestVerifyLinearizable(t *testing.T) {
	o := verifyOptions{clients: 6, accounts: 4, initial: 100, duration: *verifyDuration, kills: *verifyKills,
		tick: 50 * time.Millisecond, check: 5 * time.Minute, exe: testExe(t), env: []string{runAsMain}, log: t.Logf}
	rep, err := verifyRun(context.Background(), o)
	t.Logf("%s", rep)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kills != o.kills {
		t.Fatalf("%d leader kills happened, want %d", rep.Kills, o.kills)
	}
	if rep.Reads == 0 || rep.Writes == 0 {
		t.Fatalf("the history has %d reads and %d writes: want both", rep.Reads, rep.Writes)
	}
}

// TestBankModel checks the checker: the model accepts a linearizable
// history and rejects non-linearizable ones.
func TestBankModel(t *testing.T) {
	names := []string{"a", "b"}
	model := bankModel(names)
	model.Init = func() any { return bankState{10, 0} }
	xfer := func(amount int64) verifyInput { return verifyInput{Op: OpTransfer, From: 0, To: 1, Amount: amount} }
	read := verifyInput{Op: "read"}
	op := func(client int, in verifyInput, call, ret int64, out verifyOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Call: call, Return: ret, Output: out}
	}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"sequential", []porcupine.Operation{
			op(0, xfer(7), 0, 1, verifyOutput{OK: true, From: 3, To: 7}),
			op(0, xfer(7), 2, 3, verifyOutput{OK: false, From: 3, To: 7}),
			op(1, read, 4, 5, verifyOutput{Read: bankState{3, 7}}),
		}, porcupine.Ok},
		{"concurrent transfers, either order", []porcupine.Operation{
			op(0, xfer(7), 0, 10, verifyOutput{OK: false, From: 2, To: 8}),
			op(1, xfer(8), 0, 10, verifyOutput{OK: true, From: 2, To: 8}),
		}, porcupine.Ok},
		{"both transfers succeed: overdraft", []porcupine.Operation{
			op(0, xfer(7), 0, 10, verifyOutput{OK: true, From: 3, To: 7}),
			op(1, xfer(8), 0, 10, verifyOutput{OK: true, From: 2, To: 8}),
		}, porcupine.Illegal},
		{"stale read after a completed transfer", []porcupine.Operation{
			op(0, xfer(7), 0, 1, verifyOutput{OK: true, From: 3, To: 7}),
			op(1, read, 2, 3, verifyOutput{Read: bankState{10, 0}}),
		}, porcupine.Illegal},
		{"unknown outcome that took effect", []porcupine.Operation{
			op(0, xfer(7), 0, math.MaxInt64, verifyOutput{Unknown: true}),
			op(1, read, 5, 6, verifyOutput{Read: bankState{3, 7}}),
		}, porcupine.Ok},
		{"unknown outcome that never took effect", []porcupine.Operation{
			op(0, xfer(7), 0, math.MaxInt64, verifyOutput{Unknown: true}),
			op(1, read, 5, 6, verifyOutput{Read: bankState{10, 0}}),
		}, porcupine.Ok},
		{"wrong reported balance", []porcupine.Operation{
			op(0, xfer(7), 0, 1, verifyOutput{OK: true, From: 3, To: 8}),
		}, porcupine.Illegal},
		{"withdraw and deposit", []porcupine.Operation{
			op(0, verifyInput{Op: OpWithdraw, From: 0, Amount: 11}, 0, 1, verifyOutput{OK: false, From: 10}),
			op(0, verifyInput{Op: OpDeposit, From: 1, Amount: 5}, 2, 3, verifyOutput{OK: true, From: 5}),
			op(0, verifyInput{Op: OpWithdraw, From: 0, Amount: 10}, 4, 5, verifyOutput{OK: true, From: 0}),
			op(1, read, 6, 7, verifyOutput{Read: bankState{0, 5}}),
		}, porcupine.Ok},
	}
	for _, tt := range tests {
		if got := porcupine.CheckOperationsTimeout(model, tt.history, 10*time.Second); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// A server that cannot start (its API port is taken) is reported at once,
// with the end of its log, instead of a wait that times out.
func TestClusterReportsAServerThatCannotStart(t *testing.T) {
	c, err := newLocalCluster(t.TempDir(), testExe(t), []string{runAsMain}, 3, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", c.nodes[1].api)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Cleanup(func() { c.stopAll() })
	for _, id := range c.ids {
		if err := c.start(id); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.waitLeader(context.Background(), c.ids, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "node 1's process exited") || !strings.Contains(err.Error(), "client API") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("error %v, want node 1's exit with its log's reason", err)
	}
	t.Logf("reported: %v", err)
}
