package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// Snapshot data as files (persistence.SnapshotFileStore).
//
// Every group's snapshot data lives in the directory "snapshots" inside the
// database's directory, on the database's filesystem (Options.FS), one file
// per snapshot named after its group, index, term and a sequence number
// unique within the directory:
//
//	g<group>-i<index>-t<term>-n<seq>.snap
//
// A sink writes "<name>.tmp", and its Commit syncs the file, renames it to
// its name and syncs the directory: the data is then durable and readable
// (OpenSnapshot), and the group remembers it in memory. The snapshot
// becomes current when its metadata is saved (SaveSnapshot or
// Update.Snapshot without Data): the same Pebble batch that stores the
// metadata records the file (key kindSnapFile: seq, size and CRC-32C).
// Files of the group older than the current one are removed then;
// at Open every temporary file is removed, and when a group is loaded every
// file of it that is not its current snapshot (committed before a crash but
// never made current) is removed too. A snapshot saved with Data is written
// the same way (a file, then the batch) inside the call.

const snapDirName = "snapshots"

// snapFile is one committed file of snapshot data.
type snapFile struct {
	index, term, seq uint64
	info             persistence.SnapshotInfo
}

func (f snapFile) name(group uint64) string {
	return fmt.Sprintf("g%d-i%d-t%d-n%d.snap", group, f.index, f.term, f.seq)
}

// parseSnapName reads a file name of the snapshots directory.
func parseSnapName(name string) (group uint64, f snapFile, ok bool) {
	base := strings.TrimSuffix(name, ".tmp")
	if _, err := fmt.Sscanf(base, "g%d-i%d-t%d-n%d.snap", &group, &f.index, &f.term, &f.seq); err != nil {
		return 0, f, false
	}
	return group, f, f.name(group) == base
}

// encodeSnapFile is the value of kindSnapFile: seq, size (8 bytes BE each)
// and the CRC-32C (4 bytes BE).
func encodeSnapFile(f snapFile) []byte {
	v := binary.BigEndian.AppendUint64(nil, f.seq)
	v = binary.BigEndian.AppendUint64(v, uint64(f.info.Size))
	return binary.BigEndian.AppendUint32(v, f.info.Checksum)
}

// openSnapshotDir creates the snapshots directory, removes the temporary
// files a crash left and sets the sequence past every file's.
func (db *DB) openSnapshotDir(dir string) error {
	db.snapDir = db.fs.PathJoin(dir, snapDirName)
	if err := db.fs.MkdirAll(db.snapDir, 0o755); err != nil {
		return fmt.Errorf("pebblestore: create %s: %w", db.snapDir, err)
	}
	if err := syncDir(db.fs, dir); err != nil {
		return err
	}
	names, err := db.fs.List(db.snapDir)
	if err != nil {
		return fmt.Errorf("pebblestore: list %s: %w", db.snapDir, err)
	}
	var top uint64
	for _, n := range names {
		_, f, ok := parseSnapName(n)
		if ok {
			top = max(top, f.seq)
		}
		if strings.HasSuffix(n, ".tmp") {
			// Gone already is fine: the sink of a node that stopped in
			// this process may remove its own temporary file meanwhile.
			if err := db.fs.Remove(db.fs.PathJoin(db.snapDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("pebblestore: remove leftover %s: %w", n, err)
			}
		}
	}
	db.fileSeq.Store(top)
	return nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("pebblestore: open directory %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("pebblestore: sync directory %s: %w", dir, err)
	}
	return d.Close()
}

func (g *Group) snapPath(f snapFile) string {
	return g.db.fs.PathJoin(g.db.snapDir, f.name(g.id))
}

// loadSnapFiles reads the current snapshot's file record and removes the
// group's other files (called by load).
func (g *Group) loadSnapFiles(snap *messages.SnapshotMetadata) error {
	v, ok, err := g.get(g.keys.kind(kindSnapFile))
	if err != nil {
		return err
	}
	if ok {
		if len(v) != 20 || snap == nil {
			return g.corrupt("snapshot file record", fmt.Errorf("%d bytes, snapshot %v", len(v), snap))
		}
		g.cur = &snapFile{index: snap.Index, term: snap.Term, seq: binary.BigEndian.Uint64(v),
			info: persistence.SnapshotInfo{Size: int64(binary.BigEndian.Uint64(v[8:])), Checksum: binary.BigEndian.Uint32(v[16:])}}
	}
	names, err := g.db.fs.List(g.db.snapDir)
	if err != nil {
		return fmt.Errorf("pebblestore: group %d: list %s: %w", g.id, g.db.snapDir, err)
	}
	for _, n := range names {
		id, f, ok := parseSnapName(n)
		if !ok || id != g.id || strings.HasSuffix(n, ".tmp") || g.cur != nil && f.seq == g.cur.seq {
			continue
		}
		if err := g.db.fs.Remove(g.db.fs.PathJoin(g.db.snapDir, n)); err != nil {
			return fmt.Errorf("pebblestore: group %d: remove stale snapshot file %s: %w", g.id, n, err)
		}
	}
	return nil
}

// setSnapshot adds to b what makes s the current snapshot and returns the
// file that holds its data (nil: none). With Data, the data is first
// written to a new file (fresh). Without, the committed data of its
// (index, term) is used, if any. After b commits, call madeCurrent.
func (g *Group) setSnapshot(b *pebble.Batch, s *messages.Snapshot) (next *snapFile, fresh bool, err error) {
	md := s.Metadata
	key := [2]uint64{md.Index, md.Term}
	switch c, ok := g.committed[key]; {
	case len(s.Data) > 0:
		sk, err := g.newSink(md.Index, md.Term)
		if err != nil {
			return nil, false, err
		}
		if _, err := sk.Write(s.Data); err != nil {
			sk.Abort()
			return nil, false, err
		}
		f, err := sk.finish()
		if err != nil {
			return nil, false, err
		}
		next, fresh = &f, true
	case ok:
		next = &c
	case g.cur != nil && g.cur.index == md.Index && g.cur.term == md.Term:
		next = g.cur
	}
	meta, err := marshal.Marshal(md)
	if err != nil {
		return next, fresh, fmt.Errorf("pebblestore: group %d: encode snapshot metadata: %w", g.id, err)
	}
	if err := b.Set(g.keys.kind(kindSnapMeta), meta, nil); err != nil {
		return next, fresh, g.batchErr(err)
	}
	if next != nil {
		err = b.Set(g.keys.kind(kindSnapFile), encodeSnapFile(*next), nil)
		if err == nil {
			err = b.Delete(g.keys.kind(kindSnapData), nil)
		}
	} else {
		// A snapshot without data (CompactTo).
		err = b.Delete(g.keys.kind(kindSnapFile), nil)
		if err == nil {
			err = b.Set(g.keys.kind(kindSnapData), nil, nil)
		}
	}
	if err != nil {
		return next, fresh, g.batchErr(err)
	}
	return next, fresh, nil
}

// dropFresh removes the file setSnapshot wrote when its batch failed.
func (g *Group) dropFresh(next *snapFile, fresh bool) {
	if fresh {
		g.db.fs.Remove(g.snapPath(*next))
	}
}

// madeCurrent records next (the data of the snapshot at md, or nil) as
// current once its batch committed, and removes the files it replaces:
// the previous current one and every committed one at or below md's
// index. A removal that fails leaves a file that the next load removes.
func (g *Group) madeCurrent(next *snapFile, md *messages.SnapshotMetadata) {
	old := g.cur
	g.cur = next
	if old != nil && (next == nil || old.seq != next.seq) {
		g.db.fs.Remove(g.snapPath(*old))
	}
	for k, f := range g.committed {
		if k[0] > md.Index {
			continue
		}
		delete(g.committed, k)
		if next == nil || f.seq != next.seq {
			g.db.fs.Remove(g.snapPath(f))
		}
	}
}

// CreateSnapshot implements persistence.SnapshotFileStore: the data goes
// to a temporary file of the snapshots directory.
func (g *Group) CreateSnapshot(ctx context.Context, md *messages.SnapshotMetadata) (persistence.SnapshotSink, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return nil, err
	}
	defer release()
	if md.GetIndex() == 0 {
		return nil, fmt.Errorf("pebblestore: group %d: %w: snapshot at index 0", g.id, persistence.ErrInvalidUpdate)
	}
	return g.newSink(md.GetIndex(), md.GetTerm())
}

// OpenSnapshot implements persistence.SnapshotFileStore. It reads the
// whole file once to check its checksum before returning.
func (g *Group) OpenSnapshot(ctx context.Context, index, term uint64) (persistence.SnapshotData, error) {
	f, file, err := g.openSnapshot(ctx, index, term)
	if err != nil || file == nil {
		return f, err
	}
	// The file is checked without the lock: a newer snapshot may become
	// current meanwhile and remove it, but an open file stays readable.
	size := int64(-1)
	if st, err := file.Stat(); err == nil {
		size = st.Size()
	}
	if err := persistence.VerifySnapshot(file, size, f.Info()); err != nil {
		file.Close()
		return nil, fmt.Errorf("pebblestore: group %d: snapshot %d@%d: %w", g.id, index, term, err)
	}
	return f, nil
}

// openSnapshot finds the data of (index, term) under the lock: an open
// file (returned twice: as SnapshotData, and to be verified), or the bytes
// of a snapshot stored inside Pebble by an earlier version (file nil).
func (g *Group) openSnapshot(ctx context.Context, index, term uint64) (persistence.SnapshotData, vfs.File, error) {
	release, err := g.begin(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	var sf *snapFile
	if c := g.cur; c != nil && c.index == index && c.term == term {
		sf = c
	} else if c, ok := g.committed[[2]uint64{index, term}]; ok {
		sf = &c
	}
	if sf == nil {
		if s := g.state.Snapshot; g.cur == nil && s != nil && s.Index == index && s.Term == term {
			data, ok, err := g.get(g.keys.kind(kindSnapData))
			if err != nil {
				return nil, nil, err
			}
			if ok && len(data) > 0 {
				return persistence.BytesSnapshotData(data), nil, nil
			}
		}
		return nil, nil, fmt.Errorf("pebblestore: group %d: snapshot %d@%d: %w", g.id, index, term, persistence.ErrNoSnapshot)
	}
	file, err := g.db.fs.Open(g.snapPath(*sf))
	if err != nil {
		return nil, nil, fmt.Errorf("pebblestore: group %d: snapshot %d@%d: %w: open %s: %v", g.id, index, term, persistence.ErrCorrupt, sf.name(g.id), err)
	}
	return fileData{File: file, info: sf.info}, file, nil
}

type fileData struct {
	vfs.File
	info persistence.SnapshotInfo
}

func (d fileData) Info() persistence.SnapshotInfo { return d.info }

// sink writes one snapshot's data to a temporary file.
type sink struct {
	g    *Group
	file snapFile
	tmp  string
	f    vfs.File
	// buf collects writes up to its capacity: the file is handed only
	// this buffer, never the caller's slice (vfs.MemFS with invariants
	// on, as under -race, scribbles on what it is given).
	buf  []byte
	done bool
	err  error
}

const sinkBuffer = 256 << 10

func (g *Group) newSink(index, term uint64) (*sink, error) {
	s := &sink{g: g, file: snapFile{index: index, term: term, seq: g.db.fileSeq.Add(1)}}
	s.tmp = g.snapPath(s.file) + ".tmp"
	f, err := g.db.fs.Create(s.tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: group %d: create snapshot file: %w", g.id, err)
	}
	s.f, s.buf = f, make([]byte, 0, sinkBuffer)
	return s, nil
}

// Write implements persistence.SnapshotSink.
func (s *sink) Write(p []byte) (int, error) {
	if s.done {
		return 0, fmt.Errorf("pebblestore: group %d: write to a finished snapshot sink: %w", s.g.id, persistence.ErrClosed)
	}
	if s.err != nil {
		return 0, s.err
	}
	s.file.info.Size += int64(len(p))
	s.file.info.Checksum = persistence.UpdateSnapshotChecksum(s.file.info.Checksum, p)
	for rest := p; len(rest) > 0; {
		k := copy(s.buf[len(s.buf):cap(s.buf)], rest)
		s.buf, rest = s.buf[:len(s.buf)+k], rest[k:]
		if len(s.buf) == cap(s.buf) {
			if err := s.flush(); err != nil {
				return len(p) - len(rest), err
			}
		}
	}
	return len(p), nil
}

// flush writes the buffer to the file.
func (s *sink) flush() error {
	if len(s.buf) > 0 {
		if _, err := s.f.Write(s.buf); err != nil {
			s.err = fmt.Errorf("pebblestore: group %d: write snapshot file: %w", s.g.id, err)
			return s.err
		}
		s.buf = s.buf[:0]
	}
	return nil
}

// finish syncs the file and gives it its name (durably): the data is
// committed, but not yet known to the group.
func (s *sink) finish() (snapFile, error) {
	if s.done {
		return snapFile{}, fmt.Errorf("pebblestore: group %d: commit of a finished snapshot sink: %w", s.g.id, persistence.ErrClosed)
	}
	err := s.err
	if err == nil {
		err = s.flush()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.done = true
	fs := s.g.db.fs
	if err == nil {
		err = fs.Rename(s.tmp, s.g.snapPath(s.file))
	}
	if err == nil {
		err = syncDir(fs, s.g.db.snapDir)
	}
	if err != nil {
		fs.Remove(s.tmp)
		fs.Remove(s.g.snapPath(s.file))
		return snapFile{}, fmt.Errorf("pebblestore: group %d: commit snapshot file: %w", s.g.id, err)
	}
	return s.file, nil
}

// Commit implements persistence.SnapshotSink.
func (s *sink) Commit() (persistence.SnapshotInfo, error) {
	f, err := s.finish()
	if err != nil {
		return persistence.SnapshotInfo{}, err
	}
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.db.fs.Remove(g.snapPath(f))
		return persistence.SnapshotInfo{}, fmt.Errorf("pebblestore: group %d: %w", g.id, persistence.ErrClosed)
	}
	key := [2]uint64{f.index, f.term}
	if prev, ok := g.committed[key]; ok {
		g.db.fs.Remove(g.snapPath(prev))
	}
	if g.committed == nil {
		g.committed = map[[2]uint64]snapFile{}
	}
	g.committed[key] = f
	return f.info, nil
}

// Abort implements persistence.SnapshotSink.
func (s *sink) Abort() error {
	if s.done {
		return nil
	}
	s.done = true
	s.f.Close()
	if err := s.g.db.fs.Remove(s.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pebblestore: group %d: remove snapshot file: %w", s.g.id, err)
	}
	return nil
}
