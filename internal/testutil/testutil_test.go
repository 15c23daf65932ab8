package testutil_test

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

const childEnv = "TESTUTIL_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Stdout.WriteString("child " + v + " " + os.Getenv("GORACE") + "\n")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFreePortsAreDistinctAndFree(t *testing.T) {
	addrs, err := testutil.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s twice in %v", a, addrs)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		l.Close()
	}
}

func TestChildCommandRunsTheTestBinaryAsChild(t *testing.T) {
	var out testutil.SyncBuffer
	cmd := testutil.ChildCommand(nil, childEnv+"=7")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "child 7 ") || !strings.Contains(got, "atexit_sleep_ms=0") {
		t.Fatalf("child said %q", got)
	}
}

func TestSyncBufferConcurrent(t *testing.T) {
	var b testutil.SyncBuffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 400 {
		t.Fatalf("%d bytes, want 400", n)
	}
}
