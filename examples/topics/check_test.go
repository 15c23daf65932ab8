package main

import (
	"strings"
	"testing"
)

// TestCheckHistory: the checker passes a good history and names each kind
// of violation.
func TestCheckHistory(t *testing.T) {
	rec := func(off, epoch, broker, seq uint64, at int64) Record {
		return Record{Offset: off, Epoch: epoch, Broker: broker, Producer: 7, Seq: seq, Payload: "m" + string(rune('a'+seq)), Accepted: at}
	}
	ackOf := func(r Record) ack {
		return ack{Producer: r.Producer, Seq: r.Seq, Payload: r.Payload,
			ProduceResponse: ProduceResponse{Partition: "t/0", Offset: r.Offset, Epoch: r.Epoch, Broker: r.Broker}}
	}
	good := []Record{rec(0, 5, 1, 1, 100), rec(1, 5, 1, 2, 110), rec(2, 9, 2, 3, 200), rec(3, 9, 2, 4, 210)}
	acks := []ack{ackOf(good[0]), ackOf(good[1]), ackOf(good[2]), ackOf(good[3])}
	if err := checkHistory(acks, map[string][]Record{"t/0": good}); err != nil {
		t.Fatalf("a good history: %v", err)
	}
	for _, tc := range []struct {
		name string
		recs []Record
		acks []ack
		want string
	}{
		{"lost", good[:3], acks, "never consumed"},
		{"duplicate", []Record{good[0], good[1], rec(2, 5, 1, 2, 120)}, acks[:2], "consumed twice"},
		{"gap", []Record{good[0], good[2]}, acks[:1], "gap or reordering"},
		{"epoch goes back", []Record{good[0], rec(1, 9, 2, 3, 200), rec(2, 5, 1, 5, 300)}, nil, "epoch 5 after epoch 9"},
		{"two brokers, one epoch", []Record{good[0], rec(1, 5, 2, 2, 110)}, nil, "accepted by brokers 1 and 2"},
		{"epochs overlap in time", []Record{good[0], rec(1, 5, 1, 2, 250), good[2]}, nil, "overlap in time"},
		{"other record at the acked offset", []Record{good[0], rec(1, 5, 1, 9, 110)}, acks[:2], "acknowledged"},
	} {
		err := checkHistory(tc.acks, map[string][]Record{"t/0": tc.recs})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: checker said %v, want %q", tc.name, err, tc.want)
		}
	}
}
