package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestClientProducesOnePartitionInOrder: concurrent Produce calls on one
// partition are sent one at a time, in sequence order. The owner remembers
// only a producer's last sequence number per partition and refuses an
// older one, so two messages in flight whose later one arrived first would
// fail the earlier one. A fake broker (synctest, fake clock) answers each
// produce after 100ms and records how many were in flight at once.
func TestClientProducesOnePartitionInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		inFlight, most := 0, 0
		var seqs []uint64
		broker := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			var req ProduceRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				return nil, err
			}
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			time.Sleep(100 * time.Millisecond) // the fake clock: every sender arrives first
			mu.Lock()
			inFlight--
			seqs = append(seqs, req.Seq)
			mu.Unlock()
			b, _ := json.Marshal(ProduceResponse{Partition: PartitionName(req.Topic, req.Partition), Offset: req.Seq - 1, Epoch: 2, Broker: 1})
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(bytes.NewReader(b)), Request: r}, nil
		})
		cl, err := NewClient([]string{"127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		cl.http = &http.Client{Transport: broker, Timeout: 5 * time.Second}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				if _, err := cl.Produce(ctx, "orders", 0, fmt.Sprint("m", i)); err != nil {
					t.Errorf("produce %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if most != 1 || !slices.Equal(seqs, []uint64{1, 2, 3, 4}) {
			t.Errorf("produces in flight at once: %d, sequence numbers in arrival order %v; want 1 and [1 2 3 4]", most, seqs)
		}
	})
}
