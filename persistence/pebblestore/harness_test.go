package pebblestore_test

import (
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	"github.com/flotilla-raft/flotilla/persistence/storetest"
)

const dir = "/db"

// quietLogger drops Pebble's routine lines; errors still reach the test log
// through the store's errors.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// memDB is a database on a crashable in-memory filesystem wrapped in an
// error-injecting one.
type memDB struct {
	mem    *vfs.MemFS
	toggle *errorfs.Toggle
	db     *pebblestore.DB
}

func openMemDB(t *testing.T, mem *vfs.MemFS) *memDB {
	t.Helper()
	m := &memDB{mem: mem, toggle: &errorfs.Toggle{Injector: errorfs.ErrInjected.If(errorfs.Writes)}}
	db, err := pebblestore.Open(dir, pebblestore.Options{
		FS:           errorfs.Wrap(mem, m.toggle),
		Logger:       quietLogger,
		CacheSize:    1 << 20,
		MemTableSize: 1 << 20,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	m.db = db
	t.Cleanup(func() { db.Close() })
	return m
}

func (m *memDB) group(t *testing.T, id uint64) *pebblestore.Group {
	t.Helper()
	g, err := m.db.Group(id)
	if err != nil {
		t.Fatalf("Group(%d): %v", id, err)
	}
	return g
}

// seedOf derives a deterministic seed from the test's name (which carries
// the storetest seed), for the crash clone's choice of unsynced data.
func seedOf(t *testing.T) uint64 {
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return h.Sum64()
}

// harness runs group 7 of a database shared with another, busy group.
func harness(t *testing.T) *storetest.Harness {
	cur := openMemDB(t, vfs.NewCrashableMem())
	const id = 7
	h := &storetest.Harness{Store: cur.group(t, id)}
	h.Reopen = func(t *testing.T) storetest.Store {
		if err := cur.db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		cur = openMemDB(t, cur.mem)
		return cur.group(t, id)
	}
	h.Crash = func(t *testing.T) func(t *testing.T) storetest.Store {
		clone := cur.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seedOf(t), 0))})
		return func(t *testing.T) storetest.Store {
			cur.db.Close() // may report the failure that led here
			cur = openMemDB(t, clone)
			return cur.group(t, id)
		}
	}
	h.FailWrites = func(t *testing.T) { cur.toggle.On() }
	return h
}

func TestConformance(t *testing.T) {
	storetest.Run(t, harness)
}
