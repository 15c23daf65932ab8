package actors

import (
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// Props returns the props of a node actor for cfg, to spawn with the
// application's own context (the node becomes the application actor's
// child). cfg is validated; every problem is reported at once. Props does
// no I/O: the node opens its store when it starts (see Config.LogStore and
// DataDir), so props that are never spawned hold nothing. One Props runs
// one node at a time: spawning it again while its node runs starts no
// second node on the same store (that one stops with ErrStoreInUse);
// spawned again after its node stopped, it starts the node anew from the
// store.
func Props(cfg Config) (*actor.Props, error) {
	cfg.ensureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sh := &shared{cfg: cfg, pool: newWorkerPool()}
	return sh.pool.props(func() actor.Actor { return newNode(sh) }), nil
}

// shared is what every instance made by the props' producer shares. The
// node recovers its own panics and stops (Receive), so its supervisor
// restarts it only if that stop itself panicked; the new instance (same
// PID) then reloads its state from the store it holds.
type shared struct {
	cfg              Config
	metrics          *nodeMetrics // created on the first start, see metrics.go
	transportStarted bool
	pool             *workerPool // runs the node and its children (dispatch.go)

	mu      sync.Mutex // guards the fields below: two spawns may start at once
	owner   *actor.PID // the node actor holding the store; nil when none
	store   persistence.LogStore
	release func() error // closes the store when the node opened it
}

// acquire opens the store for the node actor self (Config.LogStore, a
// Pebble database in Config.DataDir, or a new in-memory store), or hands
// it the store it holds already (a restart by its supervisor). A second
// node actor of the same props gets ErrStoreInUse.
func (sh *shared) acquire(self *actor.PID) (persistence.LogStore, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case sh.owner != nil && sh.owner.Equal(self):
		return sh.store, nil
	case sh.owner != nil:
		return nil, fmt.Errorf("%w: node %d of these Props runs as actor %s", ErrStoreInUse, sh.cfg.ID, sh.owner.Id)
	}
	cfg := sh.cfg
	switch {
	case cfg.LogStore != nil:
		sh.store, sh.release = cfg.LogStore, nil
	case cfg.DataDir != "":
		store, release, err := openDataDir(cfg.DataDir, cfg.ClusterID, cfg.Logger)
		if err != nil {
			return nil, err
		}
		sh.store, sh.release = store, release
	default:
		store := memstore.New()
		sh.store, sh.release = store, store.Close
	}
	sh.owner = self
	return sh.store, nil
}

// holds reports whether the node actor self holds the store.
func (sh *shared) holds(self *actor.PID) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.owner != nil && sh.owner.Equal(self)
}

// closePool lets the workers of the props' pool exit as self stops, unless
// another node of these props runs on it (self was refused its store).
func (sh *shared) closePool(self *actor.PID) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.owner == nil || (self != nil && sh.owner.Equal(self)) {
		sh.pool.close()
	}
}

// releaseStore closes what acquire opened, once self stops.
func (sh *shared) releaseStore(self *actor.PID) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.owner == nil || !sh.owner.Equal(self) {
		return nil
	}
	var err error
	if sh.release != nil {
		err = sh.release()
	}
	sh.owner, sh.store, sh.release = nil, nil, nil
	return err
}
