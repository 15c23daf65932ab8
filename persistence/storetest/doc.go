// Package storetest is the conformance suite of the persistence contracts, in
// the spirit of testing/fstest.TestFS: any persistence.LogStore that is also a
// persistence.SnapshotStore proves itself with
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) *storetest.Harness {
//			return &storetest.Harness{Store: mystore.New(...)}
//		})
//	}
//
// The suite checks ordering, suffix overwrite, compaction, snapshot install,
// the range errors of Entries and Term, the maxBytes budget, reads of the
// stable log while later entries are written (as the Raft core reads
// through persistence.RaftStorage while the persister saves), ownership of
// returned slices, context cancellation and Close. A harness that can reopen
// its storage (Harness.Reopen) also gets the restart cases; one that can
// simulate power loss (Harness.Crash) gets randomized crash cases, including a
// crash in the middle of a write (an Update is either entirely there or not at
// all, and everything acknowledged survives); one that can inject I/O errors
// (Harness.FailWrites) gets the error cases (the error surfaces, nothing
// synced is lost). The reference model for the randomized cases is
// persistence/memstore, which follows persistence.PlanUpdate.
//
// The number of crash seeds is set with -persist.crashseeds (default 50, 10
// with -short); every failure names its seed, and -persist.seed=N replays
// one.
package storetest
