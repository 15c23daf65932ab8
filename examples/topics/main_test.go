package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"
)

// asMain makes the test binary act as the topics command: the demo's
// broker processes are this binary re-run with TOPICS_AS_MAIN=1.
const asMain = "TOPICS_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestDemo runs the demo's scenario with real broker processes on
// 127.0.0.1 (mutual TLS, Pebble): three founders, producers and consumers,
// a fourth broker added through the membership API, an owner SIGKILLed, an
// operator move (the former owner is fenced), a broker removed. It asserts the two checks: every acknowledged message is
// consumed exactly once in order per partition, and epochs never overlap.
func TestDemo(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := demoOptions{exe: exe, env: []string{asMain + "=1"}, dir: t.TempDir(), tick: 50 * time.Millisecond,
		grace: time.Second, rate: 5 * time.Millisecond, phase: 200, timeout: 30 * time.Second}
	if testing.Short() {
		o.phase, o.rate = 40, 10*time.Millisecond
	}
	var out bytes.Buffer
	res, err := demo(context.Background(), o, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo: %v (logs under %s)", err, o.dir)
	}
	t.Logf("%d acknowledged, %d consumed, %d rebalances, re-owned %v after broker %d was killed, %v after broker %d was removed, %d client retries",
		res.Produced, res.Consumed, res.Rebalances, res.Reown, res.Killed, res.ReownRemoved, res.Removed, res.Retries)
	if res.Produced == 0 || res.Consumed < res.Produced {
		t.Fatalf("acknowledged %d, consumed %d: want some, every one consumed", res.Produced, res.Consumed)
	}
}
