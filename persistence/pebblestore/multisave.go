package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/flotilla-raft/flotilla/persistence"
)

// ErrDuplicateGroup: SaveGroups was given two updates of one group.
var ErrDuplicateGroup = errors.New("pebblestore: group saved twice in one SaveGroups")

// GroupUpdate is one group's Update in a SaveGroups.
type GroupUpdate struct {
	Group  *Group
	Update persistence.Update
}

// SaveGroups saves the updates of several groups of db in one Pebble batch
// committed with one pebble.Sync: one fsync for all of them (the shared
// persister of a multi-group host). Each update has Save's effect on its
// group. The answer has one error per update, in order: an update that is
// refused (a closed group, an update its group cannot take) leaves its
// group unchanged and the others are saved; a failed commit fails every
// update and the database (ErrFailed). Each group may appear once
// (ErrDuplicateGroup for the later ones); every group must belong to db.
// The groups' write locks are taken in group id order.
func (db *DB) SaveGroups(ctx context.Context, ups []GroupUpdate) []error {
	errs := make([]error, len(ups))
	if err := ctx.Err(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if err := db.acquire(); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer db.release()
	order := make([]int, 0, len(ups))
	seen := make(map[*Group]bool, len(ups))
	for i, up := range ups {
		switch {
		case up.Group == nil || up.Group.db != db:
			errs[i] = fmt.Errorf("pebblestore: SaveGroups: update %d is not of a group of this database", i)
		case seen[up.Group]:
			errs[i] = fmt.Errorf("%w: group %d", ErrDuplicateGroup, up.Group.id)
		default:
			seen[up.Group] = true
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		ga, gb := ups[a].Group.id, ups[b].Group.id
		switch {
		case ga < gb:
			return -1
		case ga > gb:
			return 1
		}
		return 0
	})
	b := db.pdb.NewBatch()
	defer b.Close()
	ops := make([]*saveOp, len(ups))
	for _, i := range order {
		g, u := ups[i].Group, ups[i].Update
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.closed {
			errs[i] = fmt.Errorf("pebblestore: group %d: %w", g.id, persistence.ErrClosed)
			continue
		}
		if u.Empty() {
			continue
		}
		// Each group's writes go first into a batch of its own, so that
		// a refused update leaves nothing in the shared one.
		gb := db.pdb.NewBatch()
		op, err := g.prepareSave(gb, u)
		if err == nil {
			err = b.Apply(gb, nil)
			if err != nil {
				op.dropped()
				err = g.batchErr(err)
			}
		}
		gb.Close()
		if err != nil {
			errs[i] = err
			continue
		}
		ops[i] = op
	}
	for _, op := range ops {
		if op != nil {
			op.committing = true
		}
	}
	if !b.Empty() {
		if err := db.commit(b); err != nil {
			for i, op := range ops {
				if op != nil {
					errs[i] = fmt.Errorf("pebblestore: group %d: save: %w", op.g.id, err)
				}
			}
			return errs
		}
	}
	for _, op := range ops {
		if op != nil {
			op.saved()
		}
	}
	return errs
}
