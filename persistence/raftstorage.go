package persistence

import (
	"context"

	"github.com/flotilla-raft/flotilla/messages"
)

// RaftStorage is the read-only view of a LogStore that the Raft core
// reads its stable log through (it implements raft.Storage, whose
// contract it follows: this package does not import the core). Each call
// is one call of the store with context.Background(); errors are the
// store's, unchanged. It is read by the node actor while the persister
// writes: a store is safe for concurrent use (see the package doc).
type RaftStorage struct{ Store LogStore }

// NewRaftStorage returns the view of s that raft.InitialState.Storage
// takes.
func NewRaftStorage(s LogStore) RaftStorage { return RaftStorage{Store: s} }

// FirstIndex is State's FirstIndex.
func (v RaftStorage) FirstIndex() (uint64, error) {
	st, err := v.Store.State(context.Background())
	return st.FirstIndex, err
}

// LastIndex is State's LastIndex.
func (v RaftStorage) LastIndex() (uint64, error) {
	st, err := v.Store.State(context.Background())
	return st.LastIndex, err
}

// Term is LogStore.Term.
func (v RaftStorage) Term(index uint64) (uint64, error) {
	return v.Store.Term(context.Background(), index)
}

// Entries is LogStore.Entries.
func (v RaftStorage) Entries(lo, hi, maxBytes uint64) ([]*messages.Entry, error) {
	return v.Store.Entries(context.Background(), lo, hi, maxBytes)
}
