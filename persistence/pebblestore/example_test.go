package pebblestore_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strconv"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
)

// A counter kept in the same database as the Raft log: each committed entry
// adds its value, and the applied index is recorded in the same atomic batch.
func Example_transactionalApply() {
	ctx := context.Background()
	db, err := pebblestore.Open("/data", pebblestore.Options{FS: vfs.NewMem(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	g, err := db.Group(1)
	if err != nil {
		log.Fatal(err)
	}
	// The persister saves entries 1..3 ...
	var ents []*messages.Entry
	for i := uint64(1); i <= 3; i++ {
		ents = append(ents, &messages.Entry{Index: i, Term: 1, Data: []byte(strconv.Itoa(int(i * 10)))})
	}
	if err := g.Save(ctx, persistence.Update{Entries: ents, HardState: &messages.HardState{Term: 1, Commit: 3}}); err != nil {
		log.Fatal(err)
	}
	// ... and the applier applies what is committed after the applied index.
	applied, _ := g.AppliedIndex(ctx)
	toApply, _ := g.Entries(ctx, applied+1, 4, 0)
	err = g.CommitApplied(ctx, toApply[len(toApply)-1].Index, func(w persistence.AppWriter) error {
		for _, e := range toApply {
			cur, _, err := w.Get([]byte("counter"))
			if err != nil {
				return err
			}
			n, _ := strconv.Atoi(string(cur))
			add, _ := strconv.Atoi(string(e.Data))
			if err := w.Set([]byte("counter"), []byte(strconv.Itoa(n+add))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	v, _, _ := g.AppGet(ctx, []byte("counter"))
	applied, _ = g.AppliedIndex(ctx)
	fmt.Printf("counter=%s applied=%d\n", v, applied)
	// Output: counter=60 applied=3
}
