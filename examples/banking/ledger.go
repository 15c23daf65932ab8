package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// Operations of the ledger.
const (
	OpOpen     = "open"
	OpDeposit  = "deposit"
	OpWithdraw = "withdraw"
	OpTransfer = "transfer"
)

// Result codes. Every applied command gets one; only CodeOK changes state.
const (
	CodeOK                = "ok"
	CodeInsufficientFunds = "insufficient_funds"
	CodeNoSuchAccount     = "no_such_account"
	CodeAccountExists     = "account_exists"
	CodeLimitExceeded     = "limit_exceeded"
	CodeInvalid           = "invalid"
	CodeDuplicate         = "duplicate"
)

const (
	// MaxAmount bounds one command's amount.
	MaxAmount = 1_000_000_000_000
	// MaxBalance bounds an account's balance, so sums never overflow.
	MaxBalance = 1_000_000_000_000_000
	// maxNameLen bounds an account name.
	maxNameLen = 64
)

// Command is one ledger command: the Data of a Raft entry, JSON-encoded.
// Amounts are whole units (say, cents).
type Command struct {
	Op      string `json:"op"`
	Account string `json:"account,omitempty"` // open, deposit, withdraw
	From    string `json:"from,omitempty"`    // transfer
	To      string `json:"to,omitempty"`      // transfer
	Amount  int64  `json:"amount"`
}

// Validate reports the first problem of c, as a sentence.
func (c Command) Validate() error {
	checkAmount := func(min int64) error {
		if c.Amount < min || c.Amount > MaxAmount {
			return fmt.Errorf("amount %d is out of range: want %d to %d", c.Amount, min, int64(MaxAmount))
		}
		return nil
	}
	switch c.Op {
	case OpOpen:
		if err := validName("account", c.Account); err != nil {
			return err
		}
		return checkAmount(0)
	case OpDeposit, OpWithdraw:
		if err := validName("account", c.Account); err != nil {
			return err
		}
		return checkAmount(1)
	case OpTransfer:
		if err := validName("from", c.From); err != nil {
			return err
		}
		if err := validName("to", c.To); err != nil {
			return err
		}
		if c.From == c.To {
			return fmt.Errorf("cannot transfer from account %q to itself", c.From)
		}
		return checkAmount(1)
	case "":
		return errors.New("the command has no op: want open, deposit, withdraw or transfer")
	default:
		return fmt.Errorf("unknown op %q: want open, deposit, withdraw or transfer", c.Op)
	}
}

// validName accepts 1 to 64 letters, digits, '-', '_' and '.'.
func validName(field, name string) error {
	if name == "" {
		return fmt.Errorf("the %s account name is empty", field)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("the %s account name is %d bytes long, at most %d are allowed", field, len(name), maxNameLen)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("the %s account name %q has the character %q: use letters, digits, '-', '_' and '.'", field, name, r)
		}
	}
	return nil
}

// Result is the outcome of an applied command, answered to its proposer.
// Balances holds the balances after the command of the accounts it names
// (also when it was refused, so a client can say why).
type Result struct {
	Code     string           `json:"code"`
	Message  string           `json:"message,omitempty"`
	Balances map[string]int64 `json:"balances,omitempty"`
}

// OK reports whether the command took effect.
func (r Result) OK() bool { return r.Code == CodeOK }

// execute decides cmd against the balances (get answers an account's
// balance and whether it exists). It returns the result and the balances to
// write; it changes nothing itself. Deterministic: every node decides alike.
func execute(get func(string) (int64, bool), cmd Command) (Result, map[string]int64) {
	if err := cmd.Validate(); err != nil {
		return Result{Code: CodeInvalid, Message: err.Error()}, nil
	}
	refuse := func(code, format string, args ...any) (Result, map[string]int64) {
		r := Result{Code: code, Message: fmt.Sprintf(format, args...), Balances: map[string]int64{}}
		for _, a := range []string{cmd.Account, cmd.From, cmd.To} {
			if b, ok := get(a); ok && a != "" {
				r.Balances[a] = b
			}
		}
		return r, nil
	}
	ok := func(w map[string]int64) (Result, map[string]int64) {
		return Result{Code: CodeOK, Balances: w}, w
	}
	switch cmd.Op {
	case OpOpen:
		if _, exists := get(cmd.Account); exists {
			return refuse(CodeAccountExists, "account %q already exists", cmd.Account)
		}
		return ok(map[string]int64{cmd.Account: cmd.Amount})
	case OpDeposit:
		b, exists := get(cmd.Account)
		if !exists {
			return refuse(CodeNoSuchAccount, "account %q does not exist", cmd.Account)
		}
		if b+cmd.Amount > MaxBalance {
			return refuse(CodeLimitExceeded, "depositing %d would take account %q above the maximum balance %d", cmd.Amount, cmd.Account, int64(MaxBalance))
		}
		return ok(map[string]int64{cmd.Account: b + cmd.Amount})
	case OpWithdraw:
		b, exists := get(cmd.Account)
		if !exists {
			return refuse(CodeNoSuchAccount, "account %q does not exist", cmd.Account)
		}
		if b < cmd.Amount {
			return refuse(CodeInsufficientFunds, "account %q holds %d, less than %d", cmd.Account, b, cmd.Amount)
		}
		return ok(map[string]int64{cmd.Account: b - cmd.Amount})
	default: // OpTransfer (Validate checked the op)
		from, fok := get(cmd.From)
		to, tok := get(cmd.To)
		switch {
		case !fok:
			return refuse(CodeNoSuchAccount, "account %q does not exist", cmd.From)
		case !tok:
			return refuse(CodeNoSuchAccount, "account %q does not exist", cmd.To)
		case from < cmd.Amount:
			return refuse(CodeInsufficientFunds, "account %q holds %d, less than %d", cmd.From, from, cmd.Amount)
		case to+cmd.Amount > MaxBalance:
			return refuse(CodeLimitExceeded, "the transfer would take account %q above the maximum balance %d", cmd.To, int64(MaxBalance))
		}
		return ok(map[string]int64{cmd.From: from - cmd.Amount, cmd.To: to + cmd.Amount})
	}
}

// Keys of the ledger in the store's application namespace.
var (
	keyAccounts = []byte("accounts") // JSON list of account names, sorted
)

func accountKey(name string) []byte { return append([]byte("acct/"), name...) }

func sessionKey(client uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("sess/"), client)
}

// session is a client's last applied command and its result.
type session struct {
	Seq    uint64 `json:"seq"`
	Result Result `json:"result"`
}

// Ledger is the replicated state machine: accounts and balances, kept in
// the node's Pebble store and written with the applied index in one atomic
// batch (persistence.AppliedIndexStore.CommitApplied), so that after a crash
// the balances and the applied index always agree and no entry is applied
// twice.
//
// It keeps its own session table (client id → last sequence and result) in
// the same batch, and says so (DeduplicatesCommands), so the library hands
// it retried commands instead of deduplicating them itself: a client
// retrying a command applied before a restart is answered from this table,
// with the original result.
//
// The applier actor calls Apply and Query, one at a time; the mutex guards
// the in-memory copy for Balances, which HTTP handlers call.
type Ledger struct {
	store persistence.AppliedIndexStore

	mu       sync.RWMutex
	balances map[string]int64
	sessions map[uint64]session // cache of the stored table
}

// NewLedger loads the ledger kept in store.
func NewLedger(store persistence.AppliedIndexStore) (*Ledger, error) {
	l := &Ledger{store: store, balances: map[string]int64{}, sessions: map[uint64]session{}}
	ctx := context.Background()
	v, found, err := store.AppGet(ctx, keyAccounts)
	if err != nil {
		return nil, fmt.Errorf("ledger: read the account list: %w", err)
	}
	if !found {
		return l, nil
	}
	var names []string
	if err := json.Unmarshal(v, &names); err != nil {
		return nil, fmt.Errorf("ledger: decode the account list: %w", err)
	}
	for _, n := range names {
		b, found, err := store.AppGet(ctx, accountKey(n))
		if err != nil {
			return nil, fmt.Errorf("ledger: read account %q: %w", n, err)
		}
		if !found || len(b) != 8 {
			return nil, fmt.Errorf("ledger: account %q is listed but its balance is missing or corrupt", n)
		}
		l.balances[n] = int64(binary.BigEndian.Uint64(b))
	}
	return l, nil
}

// AppliedIndex implements actors.AppliedIndexer.
// DeduplicatesCommands tells the applier that the ledger's own durable
// session table answers retried commands (actors.CommandDeduplicator).
func (l *Ledger) DeduplicatesCommands() {}

func (l *Ledger) AppliedIndex() (uint64, error) {
	return l.store.AppliedIndex(context.Background())
}

// Apply implements actors.StateMachine. A storage failure panics: the
// applier fails, and the node stops (fail-stop) rather than diverge.
func (l *Ledger) Apply(e *messages.Entry) any {
	var cmd Command
	var res Result
	var writes map[string]int64
	decodeErr := json.Unmarshal(e.Data, &cmd)
	client, seq := e.ClientId, e.Sequence
	dedup := client != 0 && seq != 0
	var prev session
	var known bool
	if dedup {
		var err error
		prev, known, err = l.session(client)
		if err != nil {
			panic(fmt.Sprintf("ledger: entry %d: %v", e.Index, err))
		}
	}
	switch {
	case dedup && known && seq == prev.Seq:
		res = prev.Result // a retry of the last command: its original result
	case dedup && known && seq < prev.Seq:
		res = Result{Code: CodeDuplicate, Message: fmt.Sprintf("command %d of client %d was already applied; its result is no longer kept", seq, client)}
	case decodeErr != nil:
		res = Result{Code: CodeInvalid, Message: fmt.Sprintf("undecodable command: %v", decodeErr)}
	default:
		l.mu.RLock()
		res, writes = execute(func(a string) (int64, bool) { b, ok := l.balances[a]; return b, ok }, cmd)
		l.mu.RUnlock()
	}
	newAccount := cmd.Op == OpOpen && res.OK() && len(writes) > 0
	var names []byte
	if newAccount {
		l.mu.RLock()
		list := make([]string, 0, len(l.balances)+1)
		for n := range l.balances {
			list = append(list, n)
		}
		l.mu.RUnlock()
		list = append(list, cmd.Account)
		slices.Sort(list)
		names, _ = json.Marshal(list)
	}
	record := dedup && (!known || seq > prev.Seq)
	var sess []byte
	if record {
		sess, _ = json.Marshal(session{Seq: seq, Result: res})
	}
	err := l.store.CommitApplied(context.Background(), e.Index, func(w persistence.AppWriter) error {
		for a, b := range writes {
			if err := w.Set(accountKey(a), binary.BigEndian.AppendUint64(nil, uint64(b))); err != nil {
				return err
			}
		}
		if names != nil {
			if err := w.Set(keyAccounts, names); err != nil {
				return err
			}
		}
		if sess != nil {
			return w.Set(sessionKey(client), sess)
		}
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("ledger: commit entry %d: %v", e.Index, err))
	}
	l.mu.Lock()
	for a, b := range writes {
		l.balances[a] = b
	}
	if record {
		l.sessions[client] = session{Seq: seq, Result: res}
	}
	l.mu.Unlock()
	return res
}

// session returns the stored session of client.
func (l *Ledger) session(client uint64) (session, bool, error) {
	l.mu.RLock()
	s, ok := l.sessions[client]
	l.mu.RUnlock()
	if ok {
		return s, true, nil
	}
	v, found, err := l.store.AppGet(context.Background(), sessionKey(client))
	if err != nil || !found {
		return session{}, false, err
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return session{}, false, fmt.Errorf("session of client %d is corrupt: %w", client, err)
	}
	l.mu.Lock()
	l.sessions[client] = s
	l.mu.Unlock()
	return s, true, nil
}

// Queries answered by Query.
type (
	// BalanceQuery asks for one account's balance: answer BalanceAnswer.
	BalanceQuery struct{ Account string }
	// BalancesQuery asks for every balance: answer map[string]int64.
	BalancesQuery struct{}
)

// BalanceAnswer answers BalanceQuery.
type BalanceAnswer struct {
	Balance int64
	Exists  bool
}

// Query implements actors.Querier (linearizable reads through actors.Read).
func (l *Ledger) Query(q any) (any, error) {
	switch q := q.(type) {
	case BalanceQuery:
		l.mu.RLock()
		defer l.mu.RUnlock()
		b, ok := l.balances[q.Account]
		return BalanceAnswer{Balance: b, Exists: ok}, nil
	case BalancesQuery:
		return l.Balances(), nil
	default:
		return nil, fmt.Errorf("ledger: unknown query %T", q)
	}
}

// Balances returns a copy of this node's balances as applied so far (a
// local, possibly stale, read).
func (l *Ledger) Balances() map[string]int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make(map[string]int64, len(l.balances))
	for a, b := range l.balances {
		out[a] = b
	}
	return out
}
