package main

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/pebblestore"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkStoreSave compares one synced write of n 128-byte entries (plus
// the hard state) through pebblestore's Save with the etcd driver's raw
// Pebble batch of the same entries, on the local disk: the write each
// leader and follower does once per group commit. ns/op is per write.
//
//	go test -run '^$' -bench StoreSave -benchmem
func BenchmarkStoreSave(b *testing.B) {
	for _, n := range []int{1, 32, 256} {
		b.Run(fmt.Sprintf("pebblestore/entries=%d", n), func(b *testing.B) {
			db, err := pebblestore.Open(filepath.Join(b.TempDir(), "db"), pebblestore.Options{Logger: discardLogger})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			g, err := db.Group(1)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			next := uint64(1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				u := persistence.Update{HardState: &messages.HardState{Term: 1, Commit: next - 1}}
				for range n {
					u.Entries = append(u.Entries, &messages.Entry{Term: 1, Index: next, Data: payload(next)})
					next++
				}
				if err := g.Save(ctx, u); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("raw-pebble/entries=%d", n), func(b *testing.B) {
			db, err := openPebble(filepath.Join(b.TempDir(), "db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			next := uint64(1)
			var key, val []byte
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				batch := db.NewBatch()
				for range n {
					e := &pb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(next), Data: payload(next)}
					key = etcdEntryKey(key, next)
					val, _ = proto.MarshalOptions{}.MarshalAppend(val[:0], e)
					_ = batch.Set(key, val, nil)
					next++
				}
				val, _ = proto.MarshalOptions{}.MarshalAppend(val[:0], &pb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(next - 1)})
				_ = batch.Set(etcdHardStateKey, val, nil)
				if err := batch.Commit(pebble.Sync); err != nil {
					b.Fatal(err)
				}
				batch.Close()
			}
		})
	}
}
