package actors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/flotilla-raft/flotilla/actors/raft"
	"github.com/flotilla-raft/flotilla/messages"
	"google.golang.org/protobuf/proto"
)

// ---- snapshot framing ----

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
)

// SnapshotSections is snapshot data split into its sections.
type SnapshotSections struct {
	// Version of the framing: SnapshotFormatVersion, or 0 for data
	// written before the framing.
	Version int
	// Sessions is the library's session table: client id → the last
	// sequence applied for it.
	Sessions map[uint64]uint64
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
		}
	}
	if !seen[sectionSessions] || !seen[sectionApplication] {
		return out, fmt.Errorf("%w: a section is missing (sessions %t, application %t)", ErrCorruptSnapshot, seen[sectionSessions], seen[sectionApplication])
	}
	return out, nil
}

// encodeSnapshot frames the session table and the application's bytes.
func encodeSnapshot(sessions map[uint64]session, app []byte) []byte {
	table := binary.AppendUvarint(nil, uint64(len(sessions)))
	for c, s := range sessions {
		table = binary.AppendUvarint(binary.AppendUvarint(table, c), s.seq)
	}
	out := make([]byte, 0, len(snapshotMagic)+1+2*binary.MaxVarintLen64+len(table)+len(app))
	out = append(out, snapshotMagic...)
	out = append(out, SnapshotFormatVersion)
	out = appendSection(out, sectionSessions, table)
	return appendSection(out, sectionApplication, app)
}

func appendSection(out []byte, kind uint64, body []byte) []byte {
	out = binary.AppendUvarint(binary.AppendUvarint(out, kind), uint64(len(body)))
	return append(out, body...)
}

// decodeSessions reads snapshot data into the applier's session table and
// the application's bytes.
func decodeSessions(b []byte) (map[uint64]session, []byte, error) {
	s, err := SplitSnapshot(b)
	if err != nil {
		return nil, nil, err
	}
	sessions := make(map[uint64]session, len(s.Sessions))
	for c, seq := range s.Sessions {
		sessions[c] = session{seq: seq}
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

// ---- restore with metadata ----

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

// ---- retention ----

// retention is how many entries at or below a snapshot at index the log
// keeps: Config.RetainEntries of them, fewer when Config.RetainBytes caps
// their bytes.
func (n *node) retention(index uint64) uint64 {
	keep := uint64(64)
	switch {
	case n.cfg.RetainEntries < 0:
		return 0
	case n.cfg.RetainEntries > 0:
		keep = uint64(n.cfg.RetainEntries)
	}
	keep = min(keep, index)
	if n.cfg.RetainBytes == 0 || keep == 0 {
		return keep
	}
	lo := max(index-keep+1, n.r.FirstIndex())
	ents, err := n.r.Entries(lo, index+1)
	if err != nil {
		return 0
	}
	var size uint64
	kept := uint64(0)
	for i := len(ents) - 1; i >= 0; i-- {
		if size += uint64(proto.Size(ents[i])); size > n.cfg.RetainBytes {
			break
		}
		kept++
	}
	return kept
}

// ---- application-driven compaction ----

// CompactTo tells the node that the application has durably captured its
// state up to Index (Index <= applied): the log is compacted up to Index
// (less the retained tail, Config.RetainEntries and RetainBytes), without
// asking the state machine for a snapshot now. When a follower later needs
// a snapshot, the leader asks the state machine for one (Snapshot, on the
// applier) at the index it has applied by then, and sends that. Answer:
// *CompactToResponse.
//
// The StateMachine must implement Snapshotter (data on demand),
// AppliedIndexer (after a restart its state covers Index: no snapshot is
// stored to restore) and CommandDeduplicator (the library's session table
// is not stored with the compaction, so retries must be deduplicated by
// the application's own durable table). Refused otherwise, with
// ErrBeyondApplied when Index is not applied yet, and with ErrCompacted
// when the log is already compacted at or past Index.
type CompactTo struct{ Index uint64 }

// CompactToResponse answers CompactTo: FirstIndex is the log's first index
// after the compaction.
type CompactToResponse struct {
	FirstIndex uint64
	Err        error
}

func (r *CompactToResponse) answerErr() error { return r.Err }

// ErrBeyondApplied: CompactTo named an index the state machine has not
// applied.
var ErrBeyondApplied = errors.New("actors: index not applied yet")

// ErrCompacted: the log is already compacted at or past the index asked.
var ErrCompacted = errors.New("actors: already compacted")

// lazySnapshotMade carries the data the applier produced for a peer that
// needs a snapshot of a log compacted by CompactTo.
type lazySnapshotMade struct {
	msg   *messages.Message // the core's MSG_SNAPSHOT, without data
	index uint64
	data  []byte
	err   error
}

func (n *node) compactTo(ctx actor.Context, msg *CompactTo) {
	err := n.compactToErr(msg.Index)
	if err == nil {
		err = n.r.Compact(msg.Index, nil, n.retention(msg.Index))
		if err == nil {
			n.lastSnapshot = msg.Index
			ctx.Send(n.persister, &compactRequest{snapshot: n.r.Snapshot(), compactTo: n.r.FirstIndex() - 1})
		}
	}
	n.respond(ctx, &CompactToResponse{FirstIndex: n.r.FirstIndex(), Err: err})
}

func (n *node) compactToErr(index uint64) error {
	if n.failed || n.stop != nil || n.exiting {
		return n.stoppedErr()
	}
	sm := n.cfg.StateMachine
	_, snap := sm.(Snapshotter)
	_, ai := sm.(AppliedIndexer)
	_, dd := sm.(CommandDeduplicator)
	if !snap || !ai || !dd {
		return fmt.Errorf("actors: CompactTo needs a StateMachine that implements Snapshotter (%t), AppliedIndexer (%t) and CommandDeduplicator (%t)", snap, ai, dd)
	}
	if index > n.applied {
		return fmt.Errorf("%w: CompactTo %d, applied %d", ErrBeyondApplied, index, n.applied)
	}
	if index < n.r.FirstIndex() || n.r.Snapshot() != nil && index <= n.r.Snapshot().GetMetadata().GetIndex() {
		return fmt.Errorf("%w: CompactTo %d, first index %d", ErrCompacted, index, n.r.FirstIndex())
	}
	return nil
}

// lazySnapshot takes over an outbound snapshot without data (the log was
// compacted by CompactTo): the applier makes the data, and
// lazySnapshotDone sends it. It reports whether it took m.
func (n *node) lazySnapshot(ctx actor.Context, m *messages.Message) bool {
	if m.Type != messages.MessageType_MSG_SNAPSHOT || len(m.GetSnapshot().GetData()) > 0 {
		return false
	}
	if n.lazyPending == nil {
		n.lazyPending = map[uint64]bool{}
	}
	if !n.lazyPending[m.To] {
		n.lazyPending[m.To] = true
		ctx.Send(n.applier, &snapshotRequest{lazy: m})
	}
	return true
}

// lazySnapshotDone sends the snapshot the applier made for a peer, with
// the metadata of the index it covers. Should the node have lost its
// leadership meanwhile, or the index left the log, nothing is sent: the
// leader asks again when the peer's snapshot times out.
func (n *node) lazySnapshotDone(ctx actor.Context, msg *lazySnapshotMade) {
	delete(n.lazyPending, msg.msg.To)
	if msg.err != nil || n.r.Role() != raft.Leader || n.r.Term() != msg.msg.Term {
		if msg.err != nil {
			n.log.Warn("snapshot for a lagging peer failed", "peer", msg.msg.To, "err", msg.err)
		}
		return
	}
	md, err := n.r.SnapshotMetadata(msg.index)
	if err != nil {
		n.log.Warn("snapshot for a lagging peer is out of the log", "peer", msg.msg.To, "index", msg.index, "err", err)
		return
	}
	m := msg.msg
	m.Snapshot = &messages.Snapshot{Metadata: md, Data: msg.data}
	n.send(ctx, m)
}
