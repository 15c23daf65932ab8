package transport_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/flotilla-raft/flotilla/cluster/transport"
	"github.com/flotilla-raft/flotilla/cluster/transport/transporttest"
	"github.com/flotilla-raft/flotilla/messages"
)

// tcpTransport is a user-supplied transport: length-prefixed envelopes over
// plain TCP, one connection and one writer goroutine per peer. It is all
// the contract asks for, and it passes the conformance suite.
type tcpTransport struct {
	lc    transport.Lifecycle
	codec transport.Codec
	ln    net.Listener
	wg    sync.WaitGroup

	mu    sync.Mutex
	out   map[string]chan []byte // queue per peer address
	conns map[net.Conn]bool      // every open connection, to close them
}

func newTCP(codec transport.Codec) (*tcpTransport, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &tcpTransport{codec: codec, ln: ln, out: map[string]chan []byte{}, conns: map[net.Conn]bool{}}, nil
}

func (t *tcpTransport) Start(_ context.Context, h transport.Handler) error {
	if err := t.lc.Start(h); err != nil {
		return err
	}
	t.wg.Go(func() {
		for {
			c, err := t.ln.Accept()
			if err != nil || !t.track(c) {
				return
			}
			t.wg.Go(func() { t.read(c) })
		}
	})
	return nil
}

func (t *tcpTransport) read(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		b := make([]byte, min(binary.BigEndian.Uint32(hdr[:]), 1<<31)) // the codec checks the limit
		if _, err := io.ReadFull(r, b); err != nil {
			return
		}
		if m, err := t.codec.Decode(b); err == nil {
			t.lc.Deliver(m) // a real transport would count err
		}
	}
}

func (t *tcpTransport) Send(to transport.Peer, m *messages.Message) error {
	b, err := t.codec.Encode(m)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lc.Closed() {
		return transport.ErrClosed
	}
	q, ok := t.out[to.Address]
	if !ok {
		q = make(chan []byte, 4096)
		t.out[to.Address] = q
		t.wg.Go(func() { t.write(to.Address, q) })
	}
	select {
	case q <- b:
	default: // queue full: drop, as the contract allows
	}
	return nil
}

func (t *tcpTransport) write(addr string, q chan []byte) {
	var c net.Conn
	for b := range q {
		if c == nil {
			var err error
			if c, err = net.Dial("tcp", addr); err != nil || !t.track(c) {
				c = nil
				continue // drop; redial on the next message
			}
		}
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		if _, err := c.Write(append(frame, b...)); err != nil {
			c.Close()
			c = nil
		}
	}
	if c != nil {
		c.Close()
	}
}

// track registers c for Close; false (and c closed) if already closed.
func (t *tcpTransport) track(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lc.Closed() {
		c.Close()
		return false
	}
	t.conns[c] = true
	return true
}

func (t *tcpTransport) Close() error {
	if !t.lc.Close() {
		return nil
	}
	t.ln.Close()
	t.mu.Lock()
	for _, q := range t.out {
		close(q)
	}
	for c := range t.conns {
		c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}

func TestUserSuppliedTCPTransport(t *testing.T) {
	const limit = 16 << 20
	transporttest.Run(t, func(t *testing.T, ids []uint64) map[uint64]transporttest.Node {
		nodes := map[uint64]transporttest.Node{}
		for _, id := range ids {
			tr, err := newTCP(transport.Codec{MaxSize: limit})
			if err != nil {
				t.Fatal(err)
			}
			nodes[id] = transporttest.Node{Transport: tr, Address: tr.ln.Addr().String()}
		}
		return nodes
	}, transporttest.Options{MaxMessageSize: limit})
}
