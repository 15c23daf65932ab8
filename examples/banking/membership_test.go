package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoMembership runs the membership demo end to end with real server
// processes: a fourth server started with --join is added through the
// client API (learner, then voter once caught up), the leader is removed
// and learns it, and the remaining members agree and conserve the money.
func TestDemoMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	var out bytes.Buffer
	o := demoOptions{clients: 2, accounts: 4, initial: 100, tick: 50 * time.Millisecond, exe: testExe(t), env: []string{runAsMain}}
	start := time.Now()
	err := demoMembership(context.Background(), o, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("membership demo failed after %v: %v", time.Since(start), err)
	}
	for _, want := range []string{"add-server 4", "was promoted once caught up", "remove-server", "reports it was removed",
		"(the leader's view): voters", "conservation check passed", "membership demo passed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
}

// TestMemberCommandUsage: the CLI's add-server and remove-server refuse
// bad command lines with usage errors (exit code 2) before any request.
func TestMemberCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{"add-server"}, {"add-server", "0", "127.0.0.1:7004"}, {"add-server", "4"},
		{"add-server", "4", "h:1", "--expect"}, {"add-server", "4", "h:1", "--expect", "x"},
		{"remove-server"}, {"remove-server", "x"}, {"remove-server", "4", "--learner"},
	} {
		var out bytes.Buffer
		code, err := clientCommand(context.Background(), nil, args, &out)
		if code != 2 || err == nil {
			t.Errorf("%q: code %d err %v, want a usage error", args, code, err)
		}
	}
}
