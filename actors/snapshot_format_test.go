package actors_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
	"github.com/flotilla-raft/flotilla/persistence/memstore"
)

// restorerSM is a listSM that records what RestoreSnapshot received.
type restorerSM struct {
	listSM
	mu    sync.Mutex
	metas []actors.SnapshotMeta
}

func (s *restorerSM) RestoreSnapshot(meta actors.SnapshotMeta, data []byte) error {
	s.mu.Lock()
	s.metas = append(s.metas, meta)
	s.mu.Unlock()
	return s.listSM.Restore(data)
}

// waitRestored waits until node id's state machine restored a snapshot.
func (s *restorerSM) waitRestored(t *testing.T, id uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(s.restored()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node %d restored no snapshot", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *restorerSM) restored() []actors.SnapshotMeta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.metas)
}

// splittingStore is a SnapshotStore that reads the application's section
// of every snapshot it saves, as a backup tool would. It keeps snapshots as
// []byte only (no SnapshotFileStore: the fallback a custom store gets).
type splittingStore struct {
	bytesOnlyStore
	mu   sync.Mutex
	apps [][]byte
}

// bytesOnlyStore hides every capability of a store but LogStore and
// SnapshotStore.
type bytesOnlyStore interface {
	persistence.LogStore
	persistence.SnapshotStore
}

func (s *splittingStore) SaveSnapshot(ctx context.Context, snap *messages.Snapshot) error {
	sec, err := actors.SplitSnapshot(snap.Data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.apps = append(s.apps, slices.Clone(sec.Application))
	s.mu.Unlock()
	return s.bytesOnlyStore.SaveSnapshot(ctx, snap)
}

// A follower that lags past the leader's compacted log installs the
// leader's snapshot: RestoreSnapshot gets its index, term and
// configuration; and the stores read the application's section alone.
func TestRestoreSnapshotGetsMetadataAndStoresReadTheAppSection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sms := map[uint64]*restorerSM{}
		stores := map[uint64]*splittingStore{}
		c := newClusterWith(t, 3, func(c *cluster) {
			c.configure = func(id uint64, cfg *actors.Config) {
				sm := &restorerSM{}
				sms[id] = sm
				cfg.StateMachine = sm
				stores[id] = &splittingStore{bytesOnlyStore: memstore.New()}
				cfg.LogStore = stores[id]
				cfg.RetainEntries = -1
			}
		})
		lead, lagging := c.leaveOneBehind(5)
		snap, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st := c.status(lead)
		synctest.Wait()
		c.net.Heal()
		sms[lagging].waitRestored(t, lagging)
		meta := sms[lagging].restored()[0]
		if meta.Index != snap.Index || meta.Term != st.Term || len(meta.Config.GetVoters()) != 3 {
			t.Fatalf("RestoreSnapshot got %+v, want index %d term %d with 3 voters", meta, snap.Index, st.Term)
		}
		want, _ := json.Marshal([]string{"cmd-0", "cmd-1", "cmd-2", "cmd-3", "cmd-4"})
		stores[lead].mu.Lock()
		apps := slices.Clone(stores[lead].apps)
		stores[lead].mu.Unlock()
		if len(apps) != 1 || string(apps[0]) != string(want) {
			t.Fatalf("the leader's store read application sections %q, want [%s]", apps, want)
		}
		// The follower stored the snapshot it installed: same section.
		ls, err := stores[lagging].LoadSnapshot(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if sec, err := actors.SplitSnapshot(ls.Data); err != nil || string(sec.Application) != string(want) || sec.Version != actors.SnapshotFormatVersion {
			t.Fatalf("the follower's stored snapshot splits into %+v, %v", sec, err)
		}
	})
}

// Data of the format before the framing (a bare session table, then the
// application's bytes) still splits; malformed framing is refused.
func TestSplitSnapshotFormats(t *testing.T) {
	legacy := binary.AppendUvarint(nil, 1)
	legacy = binary.AppendUvarint(binary.AppendUvarint(legacy, 7), 3)
	legacy = append(legacy, "app"...)
	sec, err := actors.SplitSnapshot(legacy)
	if err != nil || sec.Version != 0 || sec.Sessions[7] != 3 || string(sec.Application) != "app" {
		t.Fatalf("legacy data: %+v, %v", sec, err)
	}
	framed := []byte("\xff\xff\xff\xffFLSN\x01")
	framed = append(framed, 1, 1, 0)        // sessions: none
	framed = append(framed, 9, 2, 'x', 'y') // an unknown section: skipped
	framed = append(framed, 2, 3, 'a', 'p', 'p')
	sec, err = actors.SplitSnapshot(framed)
	if err != nil || sec.Version != 1 || len(sec.Sessions) != 0 || string(sec.Application) != "app" {
		t.Fatalf("framed data: %+v, %v", sec, err)
	}
	// The session table's last uses (kind 3), beside its sequences.
	withUses := []byte("\xff\xff\xff\xffFLSN\x01")
	withUses = append(withUses, 1, 3, 1, 7, 3)  // client 7 at sequence 3
	withUses = append(withUses, 3, 3, 1, 7, 42) // last used at index 42
	withUses = append(withUses, 2, 0)
	sec, err = actors.SplitSnapshot(withUses)
	if err != nil || sec.Sessions[7] != 3 || sec.SessionLastUsed[7] != 42 {
		t.Fatalf("data with last uses: %+v, %v", sec, err)
	}
	for name, bad := range map[string][]byte{
		"uses":     append([]byte("\xff\xff\xff\xffFLSN\x01"), 1, 1, 0, 3, 2, 1, 7, 2, 0), // a last use cut short
		"overrun":  append([]byte("\xff\xff\xff\xffFLSN\x01"), 1, 9, 0),
		"version":  append([]byte("\xff\xff\xff\xffFLSN\x03"), 1, 1, 0, 2, 0),
		"noapp":    append([]byte("\xff\xff\xff\xffFLSN\x01"), 1, 1, 0),
		"nolength": []byte("\xff\xff\xff\xffFLSN"),
	} {
		if _, err := actors.SplitSnapshot(bad); !errors.Is(err, actors.ErrCorruptSnapshot) {
			t.Errorf("%s: err %v, want ErrCorruptSnapshot", name, err)
		}
	}
}

var _ persistence.SnapshotStore = (*splittingStore)(nil)

// SplitSnapshot never panics on arbitrary data, refuses it with an error
// wrapping ErrCorruptSnapshot, and what it accepts lies within the data.
func FuzzSplitSnapshot(f *testing.F) {
	f.Add([]byte("\xff\xff\xff\xffFLSN\x01\x01\x01\x00\x02\x03app"))
	f.Add([]byte{1, 7, 3, 'a'})
	f.Add([]byte("\xff\xff\xff\xffFLSN\x01\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sec, err := actors.SplitSnapshot(data)
		if err != nil {
			if !errors.Is(err, actors.ErrCorruptSnapshot) {
				t.Fatalf("error %v does not wrap ErrCorruptSnapshot", err)
			}
			return
		}
		if len(sec.Application) > len(data) || 2*len(sec.Sessions) > len(data) {
			t.Fatalf("split %d bytes into an application section of %d and %d sessions", len(data), len(sec.Application), len(sec.Sessions))
		}
	})
}
