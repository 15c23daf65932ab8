package actors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/persistence"
)

// Snapshot data framing. The bytes a node hands its SnapshotStore (or
// streams into a SnapshotFileStore's sink, and sends a lagging follower)
// hold two sections, so that a store or a tool can read the application's
// part alone (SplitSnapshot), and so that they can be written and read as
// a stream:
//
//	magic    8 bytes  0xFF 0xFF 0xFF 0xFF 'F' 'L' 'S' 'N'
//	version  1 byte   SnapshotFormatVersion (2)
//	sections, each:   kind (uvarint), length (uvarint), length bytes
//	  kind 1: the library's session table: a count (uvarint), then per
//	          client its id and last applied sequence (uvarints)
//	  kind 3: the session table's last uses: a count (uvarint), then per
//	          client its id and the index of its last entry (uvarints),
//	          which order sessions for expiry (Config.MaxSessions,
//	          SessionTTL); data without it (written before it) counts
//	          every session as last used at the snapshot's index
//	then, last:       kind 2 (uvarint), then the application's bytes, as
//	                  its Snapshotter or SnapshotView wrote them, up to the
//	                  end of the data (no length: the writer need not
//	                  know it in advance)
//
// A writer puts the library's section first and the application's last;
// a reader skips sections of kinds it does not know (a later version may
// add some before the application's) and refuses data where a section
// overruns the end.
//
// Older data is still read. Version 1 (written before snapshots streamed)
// gives the application's section a length like the others. Version 0
// (before the framing: the session table, then the application's bytes,
// with no header) is recognized by its first bytes, which can never be
// the magic: they would read as a session count larger than any snapshot
// could hold.
const SnapshotFormatVersion = 2

const snapshotMagic = "\xff\xff\xff\xffFLSN"

// Section kinds of the snapshot framing.
const (
	sectionSessions    = 1
	sectionApplication = 2
	sectionSessionUse  = 3
)

// maxSessionSection bounds the session table section a reader accepts
// (a larger length is corrupt data, not a table to allocate).
const maxSessionSection = 1 << 30

// SnapshotSections is snapshot data split into its sections.
type SnapshotSections struct {
	// Version of the framing: SnapshotFormatVersion, 1, or 0 for data
	// written before the framing.
	Version int
	// Sessions is the library's session table: client id → the last
	// sequence applied for it.
	Sessions map[uint64]uint64
	// SessionLastUsed is, per client of Sessions, the index of its last
	// entry (nil in data written before it was recorded).
	SessionLastUsed map[uint64]uint64
	// Application is the state machine's own bytes, as its Snapshot
	// returned them (a sub-slice of the data: do not modify it).
	Application []byte
}

// SplitSnapshot splits snapshot data (a messages.Snapshot's Data, as a
// SnapshotStore holds it) into the library's session table and the
// application's bytes. Malformed data is an error wrapping
// ErrCorruptSnapshot.
func SplitSnapshot(data []byte) (SnapshotSections, error) {
	rd := bytes.NewReader(data)
	br := bufio.NewReaderSize(rd, 16)
	h, err := readSnapshotHeader(br)
	out := SnapshotSections{Version: h.version, Sessions: h.sessions, SessionLastUsed: h.lastUsed}
	if err != nil {
		return out, err
	}
	at := len(data) - rd.Len() - br.Buffered()
	out.Application = data[at:]
	if h.appLen >= 0 {
		if h.appLen > int64(len(out.Application)) {
			return out, fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, sectionApplication)
		}
		// Version 1: sections after the application's are checked, and
		// skipped.
		rest := out.Application[h.appLen:]
		out.Application = out.Application[:h.appLen]
		if err := skipSections(bufio.NewReader(bytes.NewReader(rest)), map[uint64]bool{sectionSessions: true, sectionApplication: true}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// snapshotHeader is what precedes the application's bytes.
type snapshotHeader struct {
	version  int
	sessions map[uint64]uint64
	lastUsed map[uint64]uint64 // section 3; nil when the data has none
	// appLen is the length of the application's section; -1 when it runs
	// to the end of the data (version 2, and version 0).
	appLen int64
}

// readSnapshotHeader reads the framing up to the application's bytes,
// which r is left at. Malformed data is an error wrapping
// ErrCorruptSnapshot.
func readSnapshotHeader(r *bufio.Reader) (snapshotHeader, error) {
	h := snapshotHeader{appLen: -1}
	if magic, _ := r.Peek(len(snapshotMagic)); string(magic) != snapshotMagic {
		sessions, err := decodeSessionTable(r)
		if err != nil {
			return h, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
		h.sessions = sessions
		return h, nil
	}
	r.Discard(len(snapshotMagic))
	v, err := r.ReadByte()
	if err != nil {
		return h, fmt.Errorf("%w: no framing version", ErrCorruptSnapshot)
	}
	h.version = int(v)
	if h.version != 1 && h.version != SnapshotFormatVersion {
		return h, fmt.Errorf("%w: framing version %d, this library reads 1 and %d", ErrCorruptSnapshot, h.version, SnapshotFormatVersion)
	}
	seen := map[uint64]bool{}
	for {
		kind, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return h, fmt.Errorf("%w: a section is missing (sessions %t, application false)", ErrCorruptSnapshot, seen[sectionSessions])
		}
		if err != nil {
			return h, fmt.Errorf("%w: bad section kind", ErrCorruptSnapshot)
		}
		if seen[kind] {
			return h, fmt.Errorf("%w: section %d twice", ErrCorruptSnapshot, kind)
		}
		seen[kind] = true
		if kind == sectionApplication && h.version >= 2 {
			break // the application's bytes, to the end
		}
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return h, fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
		}
		if kind == sectionApplication {
			h.appLen = int64(min(n, math.MaxInt64))
			break
		}
		if kind != sectionSessions && kind != sectionSessionUse {
			if k, _ := io.CopyN(io.Discard, r, int64(min(n, math.MaxInt64))); uint64(k) != n {
				return h, fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
			}
			continue
		}
		if n > maxSessionSection {
			return h, fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
		}
		var body bytes.Buffer
		if k, _ := io.CopyN(&body, r, int64(n)); uint64(k) != n {
			return h, fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
		}
		br := bufio.NewReader(&body)
		table, err := decodeSessionTable(br)
		if err != nil {
			return h, fmt.Errorf("%w: section %d: %w", ErrCorruptSnapshot, kind, err)
		}
		if k := br.Buffered() + body.Len(); k > 0 {
			return h, fmt.Errorf("%w: %d stray bytes after section %d", ErrCorruptSnapshot, k, kind)
		}
		if kind == sectionSessions {
			h.sessions = table
		} else {
			h.lastUsed = table
		}
	}
	if !seen[sectionSessions] {
		return h, fmt.Errorf("%w: a section is missing (sessions false, application true)", ErrCorruptSnapshot)
	}
	return h, nil
}

// skipSections checks the length-prefixed sections of r up to its end
// (version 1, after the application's section); seen are the kinds read
// already.
func skipSections(r *bufio.Reader, seen map[uint64]bool) error {
	for {
		kind, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: bad section kind", ErrCorruptSnapshot)
		}
		if seen[kind] {
			return fmt.Errorf("%w: section %d twice", ErrCorruptSnapshot, kind)
		}
		seen[kind] = true
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
		}
		if k, _ := io.CopyN(io.Discard, r, int64(min(n, math.MaxInt64))); uint64(k) != n {
			return fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
		}
	}
}

// snapshotHeaderBytes is the framing that precedes the application's
// bytes: magic, version, the session table (sequences, then last uses),
// the application's kind.
func snapshotHeaderBytes(sessions *sessionTable) []byte {
	all := sessions.all()
	table := binary.AppendUvarint(nil, uint64(len(all)))
	uses := binary.AppendUvarint(nil, uint64(len(all)))
	for _, se := range all {
		table = binary.AppendUvarint(binary.AppendUvarint(table, se.client), se.s.seq)
		uses = binary.AppendUvarint(binary.AppendUvarint(uses, se.client), se.s.lastUsed)
	}
	out := make([]byte, 0, len(snapshotMagic)+1+5*binary.MaxVarintLen64+len(table)+len(uses))
	out = append(out, snapshotMagic...)
	out = append(out, SnapshotFormatVersion)
	out = binary.AppendUvarint(binary.AppendUvarint(out, sectionSessions), uint64(len(table)))
	out = append(out, table...)
	out = binary.AppendUvarint(binary.AppendUvarint(out, sectionSessionUse), uint64(len(uses)))
	out = append(out, uses...)
	return binary.AppendUvarint(out, sectionApplication)
}

// encodeSnapshot frames the session table and the application's bytes.
func encodeSnapshot(sessions *sessionTable, app []byte) []byte {
	return append(snapshotHeaderBytes(sessions), app...)
}

// decodeSessions reads snapshot data (of a snapshot at index) into the
// applier's sessions and the application's bytes.
func decodeSessions(b []byte, index uint64) ([]sessionEntry, []byte, error) {
	s, err := SplitSnapshot(b)
	if err != nil {
		return nil, nil, err
	}
	return toSessions(s.Sessions, s.SessionLastUsed, index), s.Application, nil
}

// toSessions pairs a snapshot's session sequences with their last uses;
// a session without one (data written before they were recorded) counts
// as used at the snapshot's index.
func toSessions(seqs, lastUsed map[uint64]uint64, index uint64) []sessionEntry {
	sessions := make([]sessionEntry, 0, len(seqs))
	for c, seq := range seqs {
		used, ok := lastUsed[c]
		if !ok {
			used = index
		}
		sessions = append(sessions, sessionEntry{client: c, s: session{seq: seq, lastUsed: used}})
	}
	return sessions
}

// decodeSessionTable reads a session table (count, then client and
// sequence pairs), leaving r after it.
func decodeSessionTable(r *bufio.Reader) (map[uint64]uint64, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, errors.New("corrupt session table")
	}
	sessions := make(map[uint64]uint64, min(n, 1<<16))
	for range n {
		c, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, errors.New("corrupt session table")
		}
		seq, err := binary.ReadUvarint(r)
		if err != nil {
			return nil, errors.New("corrupt session table")
		}
		sessions[c] = seq
	}
	return sessions, nil
}

// SnapshotMeta describes a snapshot being restored: the index and term of
// the last entry it covers and the configuration in force there.
type SnapshotMeta struct {
	Index, Term uint64
	Config      *messages.ClusterConfig
}

// SnapshotRestorer is optionally implemented by a Snapshotter that wants
// to know what it restores: the applier then calls RestoreSnapshot instead
// of Restore, with the snapshot's metadata and the application's bytes
// (the library's section removed). Like Restore, it runs on the applier,
// between Apply calls.
//
// A StreamSnapshotter gets the same SnapshotMeta in RestoreFrom.
type SnapshotRestorer interface {
	RestoreSnapshot(meta SnapshotMeta, data []byte) error
}

// restoreApp hands the application's bytes of s to the state machine.
func restoreApp(sn Snapshotter, s *messages.Snapshot, app []byte) error {
	if r, ok := sn.(SnapshotRestorer); ok {
		md := s.GetMetadata()
		return r.RestoreSnapshot(SnapshotMeta{Index: md.GetIndex(), Term: md.GetTerm(), Config: md.GetConfig()}, app)
	}
	return sn.Restore(app)
}

// ErrCorruptSnapshot: snapshot data the state machine cannot restore.
var ErrCorruptSnapshot = errors.New("actors: corrupt snapshot")

// checkSnapshot reports whether s's data can be restored into sm: the
// session table decodes, and sm (if it implements SnapshotValidator)
// accepts its bytes. It runs on the node actor, before the core installs
// a snapshot received from a member.
func checkSnapshot(sm StateMachine, s *messages.Snapshot) error {
	if !snapshotCapable(sm) {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, errNotSnapshotter)
	}
	_, b, err := decodeSessions(s.GetData(), s.GetMetadata().GetIndex())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	if v, ok := sm.(SnapshotValidator); ok {
		if err := v.ValidateSnapshot(b); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
	}
	return nil
}

// checkSnapshotData is checkSnapshot for data in the store's files (a
// snapshot received in chunks), read from d with a bounded buffer: the
// framing and the session table, and, for a SnapshotValidator, the state
// machine's bytes, read whole into memory since it takes them as a
// []byte. It runs on the snapshot receiver, before the node installs the
// snapshot.
func checkSnapshotData(sm StateMachine, d persistence.SnapshotData) error {
	if !snapshotCapable(sm) {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, errNotSnapshotter)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(d, 0, d.Info().Size), 64<<10)
	h, err := readSnapshotHeader(br)
	if err != nil {
		return err
	}
	v, validate := sm.(SnapshotValidator)
	if !validate && h.appLen < 0 {
		return nil // version 2: the application's bytes run to the end
	}
	app := io.Reader(br)
	if h.appLen >= 0 {
		app = io.LimitReader(br, h.appLen)
	}
	var b []byte
	var n int64
	if validate {
		b, err = io.ReadAll(app)
		n = int64(len(b))
	} else {
		n, err = io.Copy(io.Discard, app)
	}
	if err != nil {
		return fmt.Errorf("actors: read snapshot data: %w", err)
	}
	if h.appLen >= 0 {
		if n != h.appLen {
			return fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, sectionApplication)
		}
		if err := skipSections(br, map[uint64]bool{sectionSessions: true, sectionApplication: true}); err != nil {
			return err
		}
	}
	if validate {
		if err := v.ValidateSnapshot(b); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
	}
	return nil
}
