package transport_test

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/messages"
)

func sampleMessage() *messages.Message {
	return &messages.Message{
		Type: messages.MessageType_MSG_APPEND, ClusterId: 7, From: 1, To: 2, Term: 3,
		LogTerm: 2, Index: 10, Commit: 9, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		Entries: []*messages.Entry{
			{Term: 3, Index: 11, Data: []byte("hello"), ClientId: 4, Sequence: 5},
			{Term: 3, Index: 12, Type: messages.EntryType_ENTRY_NOOP},
		},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	m := sampleMessage()
	b, err := transport.Encode(m)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := transport.Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !proto.Equal(got, m) {
		t.Fatalf("round trip changed the message:\n got %v\nwant %v", got, m)
	}
}

func TestCodecErrors(t *testing.T) {
	big := &messages.Message{Context: bytes.Repeat([]byte{1}, 1000)}
	small := transport.Codec{MaxSize: 100}
	validEnvelope, _ := proto.Marshal(&messages.Envelope{Version: 1, Payload: []byte{0x08, 0x01}})
	wrongVersion, _ := proto.Marshal(&messages.Envelope{Version: 2})
	noVersion, _ := proto.Marshal(&messages.Envelope{Payload: []byte{0x08, 0x01}})
	badPayload, _ := proto.Marshal(&messages.Envelope{Version: 1, Payload: []byte{0xff, 0xff, 0xff}})
	if _, err := small.Decode(validEnvelope); err != nil {
		t.Fatalf("valid small envelope: %v", err)
	}

	for _, tc := range []struct {
		name string
		err  error
		run  func() error
	}{
		{"encode nil", transport.ErrInvalidMessage, func() error { _, err := transport.Encode(nil); return err }},
		{"encode oversized", transport.ErrOversized, func() error { _, err := small.Encode(big); return err }},
		{"decode oversized", transport.ErrOversized, func() error { _, err := small.Decode(make([]byte, 101)); return err }},
		{"decode garbage", transport.ErrDecode, func() error { _, err := transport.Decode([]byte{0xff, 0xff}); return err }},
		{"wrong version", transport.ErrVersion, func() error { _, err := transport.Decode(wrongVersion); return err }},
		{"missing version", transport.ErrDecode, func() error { _, err := transport.Decode(noVersion); return err }},
		{"bad payload", transport.ErrDecode, func() error { _, err := transport.Decode(badPayload); return err }},
		{"unwrap nil", transport.ErrDecode, func() error { _, err := transport.Codec{}.Unwrap(nil); return err }},
		{"unwrap oversized", transport.ErrOversized, func() error {
			_, err := small.Unwrap(&messages.Envelope{Version: 1, Payload: make([]byte, 200)})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder of inbound envelopes: it
// must return a message or an error, never panic, and what it accepts must
// re-encode.
func FuzzDecode(f *testing.F) {
	good, _ := transport.Encode(sampleMessage())
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01})
	f.Add([]byte{0x08, 0x01, 0x12, 0x02, 0x08, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := transport.Codec{MaxSize: 1 << 16}
		m, err := c.Decode(b)
		if err != nil {
			if !errors.Is(err, transport.ErrDecode) && !errors.Is(err, transport.ErrOversized) {
				t.Fatalf("error %v is neither ErrDecode nor ErrOversized", err)
			}
			return
		}
		if _, err := (transport.Codec{}).Encode(m); err != nil {
			t.Fatalf("decoded message does not re-encode: %v", err)
		}
	})
}

// FuzzUnwrap feeds arbitrary envelopes (as protoactor remote hands them
// over, already parsed) to Unwrap.
func FuzzUnwrap(f *testing.F) {
	good, _ := proto.Marshal(sampleMessage())
	f.Add(uint32(1), good, "k", "v")
	f.Add(uint32(0), []byte{}, "", "")
	f.Add(uint32(2), []byte{0xff}, "traceparent", "x")
	f.Fuzz(func(t *testing.T, version uint32, payload []byte, k, v string) {
		e := &messages.Envelope{Version: version, Payload: payload, Headers: map[string]string{k: v}}
		if _, err := (transport.Codec{MaxSize: 1 << 16}).Unwrap(e); err != nil &&
			!errors.Is(err, transport.ErrDecode) && !errors.Is(err, transport.ErrOversized) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
