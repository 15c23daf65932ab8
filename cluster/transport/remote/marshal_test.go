package remote_test

import (
	"google.golang.org/protobuf/proto"

	"github.com/flotilla-raft/flotilla/messages"
)

func marshal(m *messages.Message) ([]byte, error) { return proto.Marshal(m) }

func unmarshal(b []byte, m *messages.Message) error { return proto.Unmarshal(b, m) }
