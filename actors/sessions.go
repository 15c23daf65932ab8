package actors

import (
	"cmp"
	"container/list"
	"errors"
	"slices"

	"github.com/flotilla-raft/flotilla/messages"
)

// ErrSessionExpired answers a proposal whose client has no session while
// its Sequence is past 1: the client's session expired (Config.MaxSessions,
// SessionTTL), or its first command was never applied. The proposal is not
// applied. An earlier attempt of it may have been, before the session
// expired: its outcome is unknown. Continue with a new client id, from
// sequence 1. A ProposeResponse wraps it with the client id and sequence.
var ErrSessionExpired = errors.New("actors: session expired")

// session is what the applier remembers of a client: its last applied
// sequence, that command's result (unknown after a restart or a
// snapshot), and the index of the last entry of the client (lastUsed),
// which orders sessions for expiry.
type session struct {
	seq      uint64
	result   any
	lastUsed uint64
}

// sessionTable is the applier's table of client sessions, with expiry: a
// session is forgotten once it is the least recently used of more than
// max (Config.MaxSessions), or once ttl entries (Config.SessionTTL) follow
// its last use. Every replica applies the same entries, so expiry is a
// function of the log alone: every replica, and a replica restored from a
// snapshot, expires the same sessions at the same index.
//
// Invariant: lru holds the clients of m, ordered by lastUsed, least
// recently used first.
type sessionTable struct {
	max int    // <= 0: no count limit
	ttl uint64 // 0: no age limit
	m   map[uint64]*list.Element
	lru list.List // of *sessionEntry
}

type sessionEntry struct {
	client uint64
	s      session
}

func newSessionTable(max int, ttl uint64) *sessionTable {
	t := &sessionTable{max: max, ttl: ttl, m: map[uint64]*list.Element{}}
	t.lru.Init()
	return t
}

func (t *sessionTable) get(client uint64) (session, bool) {
	if el, ok := t.m[client]; ok {
		return el.Value.(*sessionEntry).s, true
	}
	return session{}, false
}

// put records s for client, used last at s.lastUsed (the newest use), and
// expires the least recently used sessions over the count limit.
func (t *sessionTable) put(client uint64, s session) {
	if el, ok := t.m[client]; ok {
		el.Value.(*sessionEntry).s = s
		t.lru.MoveToBack(el)
	} else {
		t.m[client] = t.lru.PushBack(&sessionEntry{client: client, s: s})
	}
	for t.max > 0 && len(t.m) > t.max {
		t.remove(t.lru.Front())
	}
}

// expire forgets the sessions unused for ttl entries at index.
func (t *sessionTable) expire(index uint64) {
	for t.ttl > 0 {
		el := t.lru.Front()
		if el == nil || index-min(index, el.Value.(*sessionEntry).s.lastUsed) < t.ttl {
			return
		}
		t.remove(el)
	}
}

func (t *sessionTable) remove(el *list.Element) {
	delete(t.m, el.Value.(*sessionEntry).client)
	t.lru.Remove(el)
}

// observe runs the session rules for entry e of a client (ClientId and
// Sequence non-zero), before it is applied: sessions too old expire, and
// it reports whether e is a duplicate (its session's last result, or
// ErrDuplicate when unknown) or comes from an expired session
// (ErrSessionExpired); apply is true when e must be applied, then
// recorded with record. A duplicate or an expired one counts as a use.
func (t *sessionTable) observe(e *messages.Entry) (answer any, apply bool) {
	t.expire(e.Index)
	s, ok := t.get(e.ClientId)
	switch {
	case ok && e.Sequence <= s.seq:
		if e.Sequence == s.seq && s.result != nil {
			answer = s.result
		} else {
			answer = ErrDuplicate
		}
		s.lastUsed = e.Index
		t.put(e.ClientId, s)
		return answer, false
	case !ok && e.Sequence > 1:
		return ErrSessionExpired, false
	}
	return nil, true
}

// record remembers that e was applied with result res.
func (t *sessionTable) record(e *messages.Entry, res any) {
	t.put(e.ClientId, session{seq: e.Sequence, result: res, lastUsed: e.Index})
}

// all returns the sessions, least recently used first.
func (t *sessionTable) all() []sessionEntry {
	out := make([]sessionEntry, 0, len(t.m))
	for el := t.lru.Front(); el != nil; el = el.Next() {
		out = append(out, *el.Value.(*sessionEntry))
	}
	return out
}

// load replaces the table with sessions (from a snapshot): in the order
// of their last use, ties (data written without last uses) by client id.
func (t *sessionTable) load(sessions []sessionEntry) {
	slices.SortFunc(sessions, func(a, b sessionEntry) int {
		return cmp.Or(cmp.Compare(a.s.lastUsed, b.s.lastUsed), cmp.Compare(a.client, b.client))
	})
	clear(t.m)
	t.lru.Init()
	for _, se := range sessions {
		t.put(se.client, se.s)
	}
}
