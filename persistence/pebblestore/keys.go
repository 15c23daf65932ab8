package pebblestore

import "encoding/binary"

// Key layout. Every key of a Raft group starts with the group prefix, so a
// group's keys are contiguous and ordered by group id (big-endian), then by
// kind, then by index (big-endian) for entries:
//
//	0x00 'v'                           store format version (8 bytes BE)
//	0x01 group(8) 0x01                 hard state (messages.HardState)
//	0x01 group(8) 0x02                 log start: index(8) term(8) of the last discarded entry
//	0x01 group(8) 0x03                 snapshot metadata (messages.SnapshotMetadata)
//	0x01 group(8) 0x04                 snapshot data (raw bytes; empty for a snapshot without data, absent when a file holds it)
//	0x01 group(8) 0x05                 applied index (8 bytes BE)
//	0x01 group(8) 0x06                 the current snapshot's data file: seq(8) size(8) CRC-32C(4), see snapfiles.go
//	0x01 group(8) 0x10 index(8)        log entry (messages.Entry)
//	0x01 group(8) 0x20 key...          the application's keys (transactional apply)
const (
	nsGroup       = 0x01
	kindHardState = 0x01
	kindLogStart  = 0x02
	kindSnapMeta  = 0x03
	kindSnapData  = 0x04
	kindApplied   = 0x05
	kindSnapFile  = 0x06
	kindEntry     = 0x10
	kindApp       = 0x20

	groupPrefixLen = 1 + 8
	entryKeyLen    = groupPrefixLen + 1 + 8
	formatVersion  = 1
)

var versionKey = []byte{0x00, 'v'}

// keys builds the keys of one group.
type keys struct {
	prefix [groupPrefixLen]byte
}

func newKeys(group uint64) keys {
	var k keys
	k.prefix[0] = nsGroup
	binary.BigEndian.PutUint64(k.prefix[1:], group)
	return k
}

func (k keys) kind(kind byte) []byte {
	return append(k.prefix[:len(k.prefix):len(k.prefix)], kind)
}

// entry appends the key of the entry at index to dst.
func (k keys) entry(dst []byte, index uint64) []byte {
	dst = append(dst, k.prefix[:]...)
	dst = append(dst, kindEntry)
	return binary.BigEndian.AppendUint64(dst, index)
}

// entriesEnd is the (exclusive) upper bound of every entry key.
func (k keys) entriesEnd() []byte { return k.kind(kindEntry + 1) }

// app appends the key of the application's key to dst.
func (k keys) app(dst, key []byte) []byte {
	dst = append(dst, k.prefix[:]...)
	dst = append(dst, kindApp)
	return append(dst, key...)
}

// appEnd is the (exclusive) upper bound of every application key.
func (k keys) appEnd() []byte { return k.kind(kindApp + 1) }

// entryIndex decodes the index of an entry key of this group.
func (k keys) entryIndex(key []byte) (uint64, bool) {
	if len(key) != entryKeyLen || key[groupPrefixLen] != kindEntry || string(key[:groupPrefixLen]) != string(k.prefix[:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[groupPrefixLen+1:]), true
}
