package transport

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
)

// EnvelopeVersion is the only envelope version this code writes and reads.
const EnvelopeVersion = 1

// DefaultMaxSize is the default limit, in bytes, on an encoded envelope
// (64 MiB: a large AppendEntries batch fits; snapshots travel in chunks of
// actors.Config.SnapshotChunkBytes, 1 MiB by default).
const DefaultMaxSize = 64 << 20

// envelopeOverhead bounds the bytes an envelope adds around its payload
// without headers: version (2) + payload tag and length (1+10).
const envelopeOverhead = 16

// Codec turns Raft messages into envelopes and back, enforcing a size
// limit. The zero value is ready to use with DefaultMaxSize. Codec never
// panics on bad input: every failure is an error wrapping ErrDecode,
// ErrVersion or ErrOversized.
type Codec struct {
	// MaxSize is the largest encoded envelope accepted, in bytes, in both
	// directions. 0 means DefaultMaxSize; negative is treated as 0 bytes.
	MaxSize int
}

func (c Codec) maxSize() int {
	if c.MaxSize == 0 {
		return DefaultMaxSize
	}
	return max(c.MaxSize, 0)
}

// Wrap puts m into an envelope, checking the size limit. The payload is a
// fresh marshalling of m; the caller may keep m.
func (c Codec) Wrap(m *messages.Message) (*messages.Envelope, error) {
	if err := c.CheckSize(m); err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("transport: marshal message: %w", err)
	}
	return &messages.Envelope{Version: EnvelopeVersion, Payload: payload}, nil
}

// Unwrap decodes the Raft message inside e (an envelope that outside input
// produced), checking version and size.
func (c Codec) Unwrap(e *messages.Envelope) (*messages.Message, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil envelope", ErrDecode)
	}
	if e.GetVersion() != EnvelopeVersion {
		return nil, fmt.Errorf("%w: %w: %d", ErrDecode, ErrVersion, e.GetVersion())
	}
	if n := len(e.GetPayload()); n+envelopeOverhead > c.maxSize() {
		return nil, fmt.Errorf("%w: payload %d bytes (limit %d)", ErrOversized, n, c.maxSize())
	}
	m := new(messages.Message)
	if err := proto.Unmarshal(e.GetPayload(), m); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrDecode, err)
	}
	return m, nil
}

// Encode returns the marshalled envelope of m: what byte-oriented
// transports (TCP, message queues) put on the wire.
func (c Codec) Encode(m *messages.Message) ([]byte, error) {
	e, err := c.Wrap(m)
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("transport: marshal envelope: %w", err)
	}
	return b, nil
}

// Decode is the inverse of Encode, for outside input: oversized input is
// refused before it is parsed.
func (c Codec) Decode(b []byte) (*messages.Message, error) {
	if len(b) > c.maxSize() {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrOversized, len(b), c.maxSize())
	}
	e := new(messages.Envelope)
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("%w: envelope: %w", ErrDecode, err)
	}
	return c.Unwrap(e)
}

// Encode is Codec{}.Encode (DefaultMaxSize).
func Encode(m *messages.Message) ([]byte, error) { return Codec{}.Encode(m) }

// Decode is Codec{}.Decode (DefaultMaxSize).
func Decode(b []byte) (*messages.Message, error) { return Codec{}.Decode(b) }

// CheckSize returns an error wrapping ErrOversized if m's envelope would
// exceed the limit, without marshalling it (for transports that pass
// messages by reference, such as inmem, yet keep the same limit).
func (c Codec) CheckSize(m *messages.Message) error {
	if m == nil {
		return ErrInvalidMessage
	}
	if n := proto.Size(m) + envelopeOverhead; n > c.maxSize() {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrOversized, n, c.maxSize())
	}
	return nil
}
