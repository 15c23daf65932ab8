// Package memstore is an in-memory persistence.LogStore and
// persistence.SnapshotStore (plus persistence.AppliedIndexStore) for tests and
// simulations: the actor tests and anything that restarts a node without
// losing its "disk" use it. It keeps the log as one slice of shared entries
// (no per-entry allocation beyond slice growth), guarded by a mutex. Nothing
// survives the process; power loss and I/O errors are not modelled (the
// storetest crash cases are skipped for it). A Store outlives a restarted
// node actor: hand the same Store to the new incarnation.
package memstore
