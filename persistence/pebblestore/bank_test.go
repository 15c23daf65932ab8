package pebblestore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"github.com/flotilla-raft/flotilla/persistence/storetest"
)

// The bank: accounts with balances; a transfer moves an amount when the
// source can pay it and does nothing otherwise, so the final balances depend
// on which transfers were applied and in which order: applying one twice or
// skipping one shows.
const (
	bankAccounts = 5
	bankInitial  = 1000
)

type transfer struct{ from, to, amount uint64 }

func (t transfer) encode(padding int) []byte {
	b := binary.AppendUvarint(nil, t.from)
	b = binary.AppendUvarint(b, t.to)
	b = binary.AppendUvarint(b, t.amount)
	return append(b, make([]byte, padding)...)
}

func decodeTransfer(b []byte) (transfer, error) {
	var t transfer
	for _, f := range []*uint64{&t.from, &t.to, &t.amount} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return t, fmt.Errorf("bad transfer encoding")
		}
		*f, b = v, b[n:]
	}
	return t, nil
}

func accountKey(i uint64) []byte { return fmt.Appendf(nil, "acct/%d", i) }

func balanceOf(v []byte, found bool) (uint64, error) {
	if !found {
		return bankInitial, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("bad balance encoding")
	}
	return binary.BigEndian.Uint64(v), nil
}

func getBalance(w persistence.AppWriter, account uint64) (uint64, error) {
	v, found, err := w.Get(accountKey(account))
	if err != nil {
		return 0, err
	}
	return balanceOf(v, found)
}

// applyTransfers applies ents through w, the way a state machine does.
func applyTransfers(w persistence.AppWriter, ents []*messages.Entry) error {
	for _, e := range ents {
		t, err := decodeTransfer(e.Data)
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
		from, err := getBalance(w, t.from)
		if err != nil {
			return err
		}
		to, err := getBalance(w, t.to)
		if err != nil {
			return err
		}
		if t.from == t.to || from < t.amount {
			continue
		}
		if err := w.Set(accountKey(t.from), binary.BigEndian.AppendUint64(nil, from-t.amount)); err != nil {
			return err
		}
		if err := w.Set(accountKey(t.to), binary.BigEndian.AppendUint64(nil, to+t.amount)); err != nil {
			return err
		}
	}
	return nil
}

// modelBalances applies transfers[:n] in memory.
func modelBalances(transfers []transfer, n int) [bankAccounts]uint64 {
	var b [bankAccounts]uint64
	for i := range b {
		b[i] = bankInitial
	}
	for _, t := range transfers[:n] {
		if t.from != t.to && b[t.from] >= t.amount {
			b[t.from] -= t.amount
			b[t.to] += t.amount
		}
	}
	return b
}

func readBalances(t *testing.T, g *pebblestore.Group) [bankAccounts]uint64 {
	t.Helper()
	var b [bankAccounts]uint64
	for i := range b {
		v, found, err := g.AppGet(context.Background(), accountKey(uint64(i)))
		if err != nil {
			t.Fatalf("AppGet: %v", err)
		}
		if b[i], err = balanceOf(v, found); err != nil {
			t.Fatalf("account %d: %v", i, err)
		}
	}
	return b
}

// crashTrigger captures a crash image of mem at the n-th filesystem
// operation (counting from 1), recording what had been acknowledged then.
type crashTrigger struct {
	mem      *vfs.MemFS
	at       int64
	rng      *rand.Rand
	armed    atomic.Bool // counting starts once the database is created
	ops      atomic.Int64
	once     sync.Once
	image    *vfs.MemFS
	acked    func() (saved, applied uint64)
	ackSaved uint64
	ackAppl  uint64
}

func (c *crashTrigger) MaybeError(op errorfs.Op) error {
	if c.armed.Load() && c.ops.Add(1) == c.at {
		c.crash()
	}
	return nil
}

func (c *crashTrigger) crash() {
	c.once.Do(func() {
		c.ackSaved, c.ackAppl = c.acked()
		c.image = c.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: c.rng})
	})
}

func (c *crashTrigger) String() string { return "crashTrigger" }

// TestTransactionalApplyCrash runs a bank ledger with transactional apply,
// crashes it (power loss, half of the unsynced data kept) at a seeded
// filesystem operation, and checks after recovery that the balances are
// exactly those of the entries up to the applied index, that nothing
// acknowledged is lost, and that applying the rest of the log from there
// gives the balances of the whole log.
func TestTransactionalApplyCrash(t *testing.T) {
	for _, seed := range storetest.CrashSeeds() {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			bankCrash(t, seed)
		})
	}
}

func bankCrash(t *testing.T, seed int64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	const nEntries = 80
	transfers := make([]transfer, nEntries)
	entries := make([]*messages.Entry, nEntries)
	// One seed in four pads the entries so that the memtable flushes, and
	// crash points also fall in flushes and MANIFEST writes (it costs ten
	// times as much as a seed without padding).
	maxPadding, fsOps := 1, int64(150)
	if seed%4 == 0 {
		maxPadding, fsOps = 32<<10, 260
	}
	for i := range transfers {
		transfers[i] = transfer{rng.Uint64N(bankAccounts), rng.Uint64N(bankAccounts), 1 + rng.Uint64N(400)}
		entries[i] = &messages.Entry{Index: uint64(i + 1), Term: 1, Data: transfers[i].encode(rng.IntN(maxPadding))}
	}
	mem := vfs.NewCrashableMem()
	var saved, applied atomic.Uint64
	trig := &crashTrigger{
		mem: mem, rng: rand.New(rand.NewPCG(uint64(seed), 2)),
		at:    1 + rng.Int64N(fsOps), // the run takes about fsOps filesystem operations
		acked: func() (uint64, uint64) { return saved.Load(), applied.Load() },
	}
	db, err := pebblestore.Open(dir, pebblestore.Options{FS: errorfs.Wrap(mem, trig), Logger: quietLogger, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("seed %d: Open: %v", seed, err)
	}
	g, err := db.Group(1)
	if err != nil {
		t.Fatalf("seed %d: Group: %v", seed, err)
	}
	// A crash while Pebble creates a new database can leave a directory that
	// does not open (nothing was acknowledged yet): the crash points start
	// after the creation.
	trig.armed.Store(true)
	// Run: save a few entries, apply a few, sometimes compact, until every
	// entry is saved and applied.
	for applied.Load() < nEntries {
		if s := saved.Load(); s < nEntries {
			n := min(uint64(1+rng.IntN(8)), nEntries-s)
			u := persistence.Update{Entries: entries[s : s+n], HardState: &messages.HardState{Term: 1, Vote: 1, Commit: s + n}}
			if err := g.Save(ctx, u); err != nil {
				t.Fatalf("seed %d: Save: %v", seed, err)
			}
			saved.Store(s + n)
		}
		a, s := applied.Load(), saved.Load()
		if a < s {
			n := min(uint64(1+rng.IntN(6)), s-a)
			err := g.CommitApplied(ctx, a+n, func(w persistence.AppWriter) error {
				return applyTransfers(w, entries[a:a+n])
			})
			if err != nil {
				t.Fatalf("seed %d: CommitApplied: %v", seed, err)
			}
			applied.Store(a + n)
		}
		if rng.IntN(8) == 0 && applied.Load() > 10 {
			if err := g.Compact(ctx, applied.Load()-5); err != nil {
				t.Fatalf("seed %d: Compact: %v", seed, err)
			}
		}
	}
	t.Logf("seed %d: %d filesystem operations, crash at %d", seed, trig.ops.Load(), trig.at)
	trig.crash() // when the seeded point lies past the end of the run
	if err := db.Close(); err != nil {
		t.Fatalf("seed %d: Close: %v", seed, err)
	}

	// Recover from the crash image.
	db, err = pebblestore.Open(dir, pebblestore.Options{FS: trig.image, Logger: quietLogger, CacheSize: 1 << 20, MemTableSize: 1 << 20})
	if err != nil {
		t.Fatalf("seed %d: reopen after the crash at operation %d: %v", seed, trig.at, err)
	}
	defer db.Close()
	g, err = db.Group(1)
	if err != nil {
		t.Fatalf("seed %d: Group after the crash: %v", seed, err)
	}
	st, err := g.State(ctx)
	if err != nil {
		t.Fatalf("seed %d: State: %v", seed, err)
	}
	a, err := g.AppliedIndex(ctx)
	if err != nil {
		t.Fatalf("seed %d: AppliedIndex: %v", seed, err)
	}
	where := fmt.Sprintf("seed %d, crash at operation %d (acknowledged: saved %d, applied %d; recovered: log [%d, %d], applied %d)",
		seed, trig.at, trig.ackSaved, trig.ackAppl, st.FirstIndex, st.LastIndex, a)
	if st.LastIndex < trig.ackSaved {
		t.Fatalf("%s: acknowledged entries are lost", where)
	}
	if a < trig.ackAppl {
		t.Fatalf("%s: an acknowledged apply is lost", where)
	}
	if a > st.LastIndex || st.FirstIndex > a+1 {
		t.Fatalf("%s: the applied index is outside the log", where)
	}
	if st.HardState.Commit != st.LastIndex {
		t.Fatalf("%s: hard state commit %d does not match the last index (hard state and entries are one batch)", where, st.HardState.Commit)
	}
	if got, want := readBalances(t, g), modelBalances(transfers, int(a)); got != want {
		t.Fatalf("%s: balances %v, want %v (the state of entries 1..%d)", where, got, want, a)
	}
	// Replay the rest of the log, as the applier does after a restart.
	rest, err := g.Entries(ctx, a+1, st.LastIndex+1, 0)
	if err != nil {
		t.Fatalf("%s: Entries: %v", where, err)
	}
	for i, e := range rest {
		if e.Index != a+1+uint64(i) || string(e.Data) != string(entries[e.Index-1].Data) {
			t.Fatalf("%s: log entry %d differs from what was saved", where, e.Index)
		}
	}
	if len(rest) > 0 {
		err := g.CommitApplied(ctx, st.LastIndex, func(w persistence.AppWriter) error { return applyTransfers(w, rest) })
		if err != nil {
			t.Fatalf("%s: replay: %v", where, err)
		}
	}
	if got, want := readBalances(t, g), modelBalances(transfers, int(st.LastIndex)); got != want {
		t.Fatalf("%s: after replay balances %v, want %v", where, got, want)
	}
	if err := g.CommitApplied(ctx, st.LastIndex, nil); err == nil {
		t.Fatalf("%s: CommitApplied accepted the applied index again", where)
	}
}
