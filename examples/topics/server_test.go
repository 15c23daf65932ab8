package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilla-raft/flotilla/internal/testutil"
)

// TestBrokerAPI runs one broker in this process (remote transport,
// Pebble) and drives it through its HTTP API: produce creates the topic and
// is idempotent, consume reads what was acknowledged, and bad input is
// refused with a clear answer, counted, and changes nothing.
func TestBrokerAPI(t *testing.T) {
	ports, err := testutil.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseServerFlags([]string{"--id", "1", "--raft", ports[0], "--api", ports[1], "--insecure",
		"--data", filepath.Join(t.TempDir(), "b1"), "--tick", "10ms", "--grace", "200ms", "--partitions", "2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s, err := startServer(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.shutdown()
	cl, err := NewClient([]string{ports[1]})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	req := ProduceRequest{Topic: "orders", Partition: 1, Producer: 42, Seq: 1, Payload: "first"}
	a, err := cl.ProduceSeq(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := cl.ProduceSeq(ctx, req) // a retry: the same producer and seq
	if err != nil || !again.Duplicate || again.Offset != a.Offset || again.Epoch != a.Epoch {
		t.Fatalf("retry answered %+v, %v; want the first ack %+v marked duplicate", again, err, a)
	}
	b, err := cl.ProduceSeq(ctx, ProduceRequest{Topic: "orders", Partition: 1, Producer: 42, Seq: 2, Payload: "second"})
	if err != nil || b.Offset != a.Offset+1 {
		t.Fatalf("second message: %+v, %v", b, err)
	}
	res, err := cl.Consume(ctx, "orders/1", 0, 10)
	if err != nil || len(res.Records) != 2 || res.Records[0].Payload != "first" || res.Records[1].Payload != "second" || res.HighWatermark != 2 {
		t.Fatalf("consume: %+v, %v", res, err)
	}

	post := func(path, body string) int {
		t.Helper()
		resp, err := http.Post("http://"+ports[1]+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	huge := fmt.Sprintf(`{"topic":"orders","partition":0,"producer":1,"seq":1,"payload":%q}`, bytes.Repeat([]byte("x"), maxPayload+1))
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{pathProduce, `{"topic":`, http.StatusBadRequest},
		{pathProduce, `{"topic":"a b","producer":1,"seq":1}`, http.StatusBadRequest},
		{pathProduce, `{"topic":"orders","producer":0,"seq":1}`, http.StatusBadRequest},
		{pathProduce, `{"topic":"orders","partition":9,"producer":1,"seq":1}`, http.StatusNotFound},
		{pathProduce, huge, http.StatusBadRequest},
		{pathProduce, `{"topic":"orders","surprise":1}`, http.StatusBadRequest},
		{pathFetch, `{"partition":"made-up/0","epoch":99}`, http.StatusServiceUnavailable},
		{pathReplicate, `{"partition":"made-up/0","epoch":99}`, http.StatusServiceUnavailable},
		{pathReplicate, `{"partition":"orders/1","epoch":1,"from":0,"records":[]}`, http.StatusConflict},                          // fenced: an old epoch
		{pathFetch, `{"partition":"orders/1","epoch":1000}`, http.StatusServiceUnavailable},                                       // an epoch not applied
		{pathReplicate, fmt.Sprintf(`{"partition":"orders/1","epoch":%d,"from":0,"records":[]}`, a.Epoch), http.StatusBadRequest}, // to the owner
		{pathMove, `{"partition":"orders/0","broker":7}`, http.StatusBadRequest},
		{pathMembers, `{"id":0}`, http.StatusBadRequest},
	} {
		if got := post(tc.path, tc.body); got != tc.want {
			t.Errorf("POST %s %.60s: %d, want %d", tc.path, tc.body, got, tc.want)
		}
	}
	st, err := cl.Status(ctx, ports[1])
	if err != nil {
		t.Fatal(err)
	}
	if st.BadRequests < 10 {
		t.Errorf("bad requests counted: %d, want at least 10", st.BadRequests)
	}
	// Nothing changed, and the broker still serves.
	res, err = cl.Consume(ctx, "orders/1", 0, 10)
	if err != nil || len(res.Records) != 2 {
		t.Fatalf("consume after bad input: %+v, %v", res, err)
	}
	if _, err := cl.Consume(ctx, "orders/9", 0, 10); !errors.As(err, new(*APIError)) {
		t.Errorf("consume of a partition that does not exist: %v, want an APIError", err)
	}
}
