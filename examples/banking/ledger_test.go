package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

func TestCommandValidate(t *testing.T) {
	long := strings.Repeat("a", maxNameLen+1)
	tests := []struct {
		cmd     Command
		wantErr string // substring; "" = valid
	}{
		{Command{Op: OpOpen, Account: "alice"}, ""},
		{Command{Op: OpOpen, Account: "alice", Amount: 5}, ""},
		{Command{Op: OpOpen, Account: "alice", Amount: -1}, "out of range"},
		{Command{Op: OpDeposit, Account: "a.b-c_9", Amount: 1}, ""},
		{Command{Op: OpDeposit, Account: "alice", Amount: 0}, "out of range"},
		{Command{Op: OpDeposit, Account: "alice", Amount: MaxAmount + 1}, "out of range"},
		{Command{Op: OpWithdraw, Account: "", Amount: 1}, "name is empty"},
		{Command{Op: OpWithdraw, Account: "al ice", Amount: 1}, "character ' '"},
		{Command{Op: OpWithdraw, Account: long, Amount: 1}, "at most 64"},
		{Command{Op: OpTransfer, From: "a", To: "b", Amount: 1}, ""},
		{Command{Op: OpTransfer, From: "a", To: "a", Amount: 1}, "to itself"},
		{Command{Op: OpTransfer, From: "a", Amount: 1}, "to account name is empty"},
		{Command{Op: "steal", Account: "a", Amount: 1}, `unknown op "steal"`},
		{Command{}, "no op"},
	}
	for _, tt := range tests {
		err := tt.cmd.Validate()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tt.cmd, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%+v: error %v, want one containing %q", tt.cmd, err, tt.wantErr)
		}
	}
}

// TestExecute is the ledger's rules, one command at a time.
func TestExecute(t *testing.T) {
	start := map[string]int64{"alice": 100, "bob": 5, "rich": MaxBalance - 1}
	tests := []struct {
		name     string
		cmd      Command
		code     string
		balances map[string]int64 // reported
		writes   map[string]int64
	}{
		{"open new", Command{Op: OpOpen, Account: "carol", Amount: 7}, CodeOK, map[string]int64{"carol": 7}, map[string]int64{"carol": 7}},
		{"open existing", Command{Op: OpOpen, Account: "alice"}, CodeAccountExists, map[string]int64{"alice": 100}, nil},
		{"deposit", Command{Op: OpDeposit, Account: "bob", Amount: 10}, CodeOK, map[string]int64{"bob": 15}, map[string]int64{"bob": 15}},
		{"deposit unknown", Command{Op: OpDeposit, Account: "zed", Amount: 10}, CodeNoSuchAccount, map[string]int64{}, nil},
		{"deposit over limit", Command{Op: OpDeposit, Account: "rich", Amount: 2}, CodeLimitExceeded, map[string]int64{"rich": MaxBalance - 1}, nil},
		{"withdraw", Command{Op: OpWithdraw, Account: "alice", Amount: 100}, CodeOK, map[string]int64{"alice": 0}, map[string]int64{"alice": 0}},
		{"withdraw overdraw", Command{Op: OpWithdraw, Account: "bob", Amount: 6}, CodeInsufficientFunds, map[string]int64{"bob": 5}, nil},
		{"transfer", Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 30}, CodeOK, map[string]int64{"alice": 70, "bob": 35}, map[string]int64{"alice": 70, "bob": 35}},
		{"transfer all", Command{Op: OpTransfer, From: "bob", To: "alice", Amount: 5}, CodeOK, map[string]int64{"alice": 105, "bob": 0}, map[string]int64{"alice": 105, "bob": 0}},
		{"transfer overdraw", Command{Op: OpTransfer, From: "bob", To: "alice", Amount: 6}, CodeInsufficientFunds, map[string]int64{"alice": 100, "bob": 5}, nil},
		{"transfer from unknown", Command{Op: OpTransfer, From: "zed", To: "alice", Amount: 1}, CodeNoSuchAccount, map[string]int64{"alice": 100}, nil},
		{"transfer to unknown", Command{Op: OpTransfer, From: "alice", To: "zed", Amount: 1}, CodeNoSuchAccount, map[string]int64{"alice": 100}, nil},
		{"transfer over limit", Command{Op: OpTransfer, From: "alice", To: "rich", Amount: 2}, CodeLimitExceeded, map[string]int64{"alice": 100, "rich": MaxBalance - 1}, nil},
		{"invalid", Command{Op: OpTransfer, From: "alice", To: "alice", Amount: 1}, CodeInvalid, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			get := func(a string) (int64, bool) { b, ok := start[a]; return b, ok }
			res, writes := execute(get, tt.cmd)
			if res.Code != tt.code {
				t.Fatalf("code %q (%s), want %q", res.Code, res.Message, tt.code)
			}
			if res.Code != CodeOK && res.Message == "" {
				t.Errorf("refusal without a message")
			}
			if !maps.Equal(res.Balances, tt.balances) {
				t.Errorf("reported balances %v, want %v", res.Balances, tt.balances)
			}
			if !maps.Equal(writes, tt.writes) {
				t.Errorf("writes %v, want %v", writes, tt.writes)
			}
		})
	}
}

// entry builds a Raft entry carrying cmd.
func entry(t *testing.T, index, client, seq uint64, cmd Command) *messages.Entry {
	t.Helper()
	data, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return &messages.Entry{Index: index, Term: 1, Data: data, ClientId: client, Sequence: seq}
}

// TestLedgerApply runs a script of entries through a Ledger: state,
// deduplication of (client, sequence), and the applied index.
func TestLedgerApply(t *testing.T) {
	store := memstore.New()
	l, err := NewLedger(store)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		client, seq uint64
		cmd         Command
		data        string // raw data instead of cmd
		code        string
		after       map[string]int64
	}{
		{7, 1, Command{Op: OpOpen, Account: "alice", Amount: 50}, "", CodeOK, map[string]int64{"alice": 50}},
		{7, 2, Command{Op: OpOpen, Account: "bob"}, "", CodeOK, map[string]int64{"alice": 50, "bob": 0}},
		{8, 1, Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 20}, "", CodeOK, map[string]int64{"alice": 30, "bob": 20}},
		// A retry of client 8's command 1: answered from the session
		// table, not applied again.
		{8, 1, Command{Op: OpTransfer, From: "alice", To: "bob", Amount: 20}, "", CodeOK, map[string]int64{"alice": 30, "bob": 20}},
		// An older sequence of client 7: a duplicate.
		{7, 1, Command{Op: OpOpen, Account: "alice", Amount: 50}, "", CodeDuplicate, map[string]int64{"alice": 30, "bob": 20}},
		{8, 2, Command{Op: OpWithdraw, Account: "alice", Amount: 31}, "", CodeInsufficientFunds, map[string]int64{"alice": 30, "bob": 20}},
		// No client id: no deduplication (applied each time).
		{0, 0, Command{Op: OpDeposit, Account: "bob", Amount: 1}, "", CodeOK, map[string]int64{"alice": 30, "bob": 21}},
		{0, 0, Command{Op: OpDeposit, Account: "bob", Amount: 1}, "", CodeOK, map[string]int64{"alice": 30, "bob": 22}},
		{9, 1, Command{}, "{not json", CodeInvalid, map[string]int64{"alice": 30, "bob": 22}},
	}
	for i, s := range steps {
		e := entry(t, uint64(i+1), s.client, s.seq, s.cmd)
		if s.data != "" {
			e.Data = []byte(s.data)
		}
		res, ok := l.Apply(e).(Result)
		if !ok {
			t.Fatalf("step %d: Apply returned %T, want Result", i, l.Apply(e))
		}
		if res.Code != s.code {
			t.Fatalf("step %d (%+v): code %q (%s), want %q", i, s.cmd, res.Code, res.Message, s.code)
		}
		if got := l.Balances(); !maps.Equal(got, s.after) {
			t.Fatalf("step %d: balances %v, want %v", i, got, s.after)
		}
		if ai, _ := l.AppliedIndex(); ai != uint64(i+1) {
			t.Fatalf("step %d: applied index %d, want %d", i, ai, i+1)
		}
	}
	// The retry's result is the original one, with the original balances.
	res := l.Apply(entry(t, uint64(len(steps)+1), 8, 2, Command{Op: OpWithdraw, Account: "alice", Amount: 31})).(Result)
	if res.Code != CodeInsufficientFunds || res.Balances["alice"] != 30 {
		t.Fatalf("retry of (8, 2): %+v, want the original insufficient_funds with alice 30", res)
	}
	// Queries.
	if a, _ := l.Query(BalanceQuery{Account: "bob"}); a != (BalanceAnswer{Balance: 22, Exists: true}) {
		t.Errorf("BalanceQuery bob = %+v", a)
	}
	if a, _ := l.Query(BalanceQuery{Account: "zed"}); a != (BalanceAnswer{}) {
		t.Errorf("BalanceQuery zed = %+v", a)
	}
	if _, err := l.Query("what"); err == nil {
		t.Errorf("an unknown query type must be an error")
	}
}

// TestLedgerSurvivesRestart: balances, the applied index and the session
// table are durable together in Pebble; a reopened ledger answers a retry of
// a command applied before the restart with its original result.
func TestLedgerSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*pebblestore.DB, *Ledger) {
		db, err := pebblestore.Open(dir, pebblestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		g, err := db.Group(raftGroup)
		if err != nil {
			t.Fatal(err)
		}
		l, err := NewLedger(g)
		if err != nil {
			t.Fatal(err)
		}
		return db, l
	}
	db, l := open()
	l.Apply(entry(t, 1, 5, 1, Command{Op: OpOpen, Account: "a", Amount: 10}))
	l.Apply(entry(t, 2, 5, 2, Command{Op: OpOpen, Account: "b", Amount: 0}))
	first := l.Apply(entry(t, 3, 6, 1, Command{Op: OpTransfer, From: "a", To: "b", Amount: 4})).(Result)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, l = open()
	defer db.Close()
	if ai, err := l.AppliedIndex(); err != nil || ai != 3 {
		t.Fatalf("applied index after restart %d (%v), want 3", ai, err)
	}
	if got, want := l.Balances(), map[string]int64{"a": 6, "b": 4}; !maps.Equal(got, want) {
		t.Fatalf("balances after restart %v, want %v", got, want)
	}
	retry := l.Apply(entry(t, 4, 6, 1, Command{Op: OpTransfer, From: "a", To: "b", Amount: 4})).(Result)
	if retry.Code != CodeOK || !maps.Equal(retry.Balances, first.Balances) {
		t.Fatalf("retry after restart: %+v, want the original %+v", retry, first)
	}
	if got, want := l.Balances(), map[string]int64{"a": 6, "b": 4}; !maps.Equal(got, want) {
		t.Fatalf("the retry was applied again: balances %v, want %v", got, want)
	}
}
