package actors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flotilla-raft/flotilla/messages"
)

// Snapshot data framing. The bytes a node hands its SnapshotStore (and
// sends a lagging follower) hold two sections, so that a store or a tool
// can read the application's part alone (SplitSnapshot):
//
//	magic    8 bytes  0xFF 0xFF 0xFF 0xFF 'F' 'L' 'S' 'N'
//	version  1 byte   SnapshotFormatVersion (1)
//	sections, each:   kind (uvarint), length (uvarint), length bytes
//	  kind 1: the library's session table: a count (uvarint), then per
//	          client its id and last applied sequence (uvarints)
//	  kind 2: the application's bytes, as its Snapshotter returned them
//	  kind 3: the session table's last uses: a count (uvarint), then per
//	          client its id and the index of its last entry (uvarints),
//	          which order sessions for expiry (Config.MaxSessions,
//	          SessionTTL); data without it (written before it) counts
//	          every session as last used at the snapshot's index
//
// A writer puts the library's section first and the application's last;
// a reader skips sections of kinds it does not know (a later version may
// add some) and refuses data where a section overruns the end.
//
// Data written before the framing (version 0: the session table, then the
// application's bytes, with no header) is still read: its first bytes can
// never be the magic, which would read as a session count larger than any
// snapshot held in memory could hold.
const SnapshotFormatVersion = 1

const snapshotMagic = "\xff\xff\xff\xffFLSN"

// Section kinds of the snapshot framing.
const (
	sectionSessions    = 1
	sectionApplication = 2
	sectionSessionUse  = 3
)

// SnapshotSections is snapshot data split into its sections.
type SnapshotSections struct {
	// Version of the framing: SnapshotFormatVersion, or 0 for data
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
	if !bytes.HasPrefix(data, []byte(snapshotMagic)) {
		sessions, app, err := decodeSessionTable(data)
		if err != nil {
			return SnapshotSections{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
		return SnapshotSections{Sessions: sessions, Application: app}, nil
	}
	b := data[len(snapshotMagic):]
	if len(b) == 0 {
		return SnapshotSections{}, fmt.Errorf("%w: no framing version", ErrCorruptSnapshot)
	}
	out := SnapshotSections{Version: int(b[0])}
	if out.Version != SnapshotFormatVersion {
		return out, fmt.Errorf("%w: framing version %d, this library reads %d", ErrCorruptSnapshot, out.Version, SnapshotFormatVersion)
	}
	b = b[1:]
	seen := map[uint64]bool{}
	for len(b) > 0 {
		kind, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return out, fmt.Errorf("%w: bad section kind", ErrCorruptSnapshot)
		}
		n, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 || n > uint64(len(b)-k1-k2) {
			return out, fmt.Errorf("%w: section %d overruns the data", ErrCorruptSnapshot, kind)
		}
		body := b[k1+k2 : k1+k2+int(n)]
		b = b[k1+k2+int(n):]
		if seen[kind] {
			return out, fmt.Errorf("%w: section %d twice", ErrCorruptSnapshot, kind)
		}
		seen[kind] = true
		switch kind {
		case sectionSessions:
			s, rest, err := decodeSessionTable(body)
			if err != nil {
				return out, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
			}
			if len(rest) > 0 {
				return out, fmt.Errorf("%w: %d stray bytes after the session table", ErrCorruptSnapshot, len(rest))
			}
			out.Sessions = s
		case sectionApplication:
			out.Application = body
		case sectionSessionUse:
			u, rest, err := decodeSessionTable(body)
			if err != nil {
				return out, fmt.Errorf("%w: last uses: %w", ErrCorruptSnapshot, err)
			}
			if len(rest) > 0 {
				return out, fmt.Errorf("%w: %d stray bytes after the last uses", ErrCorruptSnapshot, len(rest))
			}
			out.SessionLastUsed = u
		}
	}
	if !seen[sectionSessions] || !seen[sectionApplication] {
		return out, fmt.Errorf("%w: a section is missing (sessions %t, application %t)", ErrCorruptSnapshot, seen[sectionSessions], seen[sectionApplication])
	}
	return out, nil
}

// encodeSnapshot frames the session table (its sequences, then its last
// uses) and the application's bytes.
func encodeSnapshot(sessions *sessionTable, app []byte) []byte {
	all := sessions.all()
	table := binary.AppendUvarint(nil, uint64(len(all)))
	uses := binary.AppendUvarint(nil, uint64(len(all)))
	for _, se := range all {
		table = binary.AppendUvarint(binary.AppendUvarint(table, se.client), se.s.seq)
		uses = binary.AppendUvarint(binary.AppendUvarint(uses, se.client), se.s.lastUsed)
	}
	out := make([]byte, 0, len(snapshotMagic)+1+6*binary.MaxVarintLen64+len(table)+len(uses)+len(app))
	out = append(out, snapshotMagic...)
	out = append(out, SnapshotFormatVersion)
	out = appendSection(out, sectionSessions, table)
	out = appendSection(out, sectionSessionUse, uses)
	return appendSection(out, sectionApplication, app)
}

func appendSection(out []byte, kind uint64, body []byte) []byte {
	out = binary.AppendUvarint(binary.AppendUvarint(out, kind), uint64(len(body)))
	return append(out, body...)
}

// decodeSessions reads snapshot data (of a snapshot at index) into the
// applier's sessions and the application's bytes. A session without a
// recorded last use counts as used at index.
func decodeSessions(b []byte, index uint64) ([]sessionEntry, []byte, error) {
	s, err := SplitSnapshot(b)
	if err != nil {
		return nil, nil, err
	}
	sessions := make([]sessionEntry, 0, len(s.Sessions))
	for c, seq := range s.Sessions {
		used, ok := s.SessionLastUsed[c]
		if !ok {
			used = index
		}
		sessions = append(sessions, sessionEntry{client: c, s: session{seq: seq, lastUsed: used}})
	}
	return sessions, s.Application, nil
}

// decodeSessionTable reads a session table (count, then client and
// sequence pairs) and returns what follows it.
func decodeSessionTable(b []byte) (map[uint64]uint64, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, nil, errors.New("corrupt session table")
	}
	b = b[k:]
	sessions := make(map[uint64]uint64, n)
	for range n {
		c, k1 := binary.Uvarint(b)
		if k1 <= 0 {
			return nil, nil, errors.New("corrupt session table")
		}
		seq, k2 := binary.Uvarint(b[k1:])
		if k2 <= 0 {
			return nil, nil, errors.New("corrupt session table")
		}
		b = b[k1+k2:]
		sessions[c] = seq
	}
	return sessions, b, nil
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
// Snapshots are whole byte slices today; streaming ones can arrive later as
// further optional interfaces beside Snapshotter and SnapshotRestorer
// (writing to an io.Writer, restoring from an io.Reader with the same
// SnapshotMeta), the framing keeping the application's section last.
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
	sn, ok := sm.(Snapshotter)
	if !ok {
		return fmt.Errorf("%w: the StateMachine does not implement Snapshotter", ErrCorruptSnapshot)
	}
	_, b, err := decodeSessions(s.GetData(), s.GetMetadata().GetIndex())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	if v, ok := sn.(SnapshotValidator); ok {
		if err := v.ValidateSnapshot(b); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
		}
	}
	return nil
}
