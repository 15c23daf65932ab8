package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// ack is a message the cluster acknowledged to a producer.
type ack struct {
	Producer, Seq uint64
	Payload       string
	ProduceResponse
}

// checkHistory checks what the producers were acknowledged against what
// the consumers read, per partition:
//
//   - exactly once, in order: the consumed offsets are 0, 1, 2, ...; no
//     (producer, seq) appears twice; every acknowledged message is at its
//     acknowledged offset with its payload and epoch;
//   - epochs never overlap: along the offsets, epochs never decrease; each
//     epoch was accepted by one broker; and the wall-clock spans in which
//     the brokers accepted the records of two epochs are disjoint (the
//     brokers run on one machine, so their clocks agree).
func checkHistory(acks []ack, consumed map[string][]Record) error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(consumed)) {
		recs := consumed[name]
		seen := map[[2]uint64]uint64{}
		type span struct {
			broker   uint64
			from, to int64
		}
		epochs := map[uint64]*span{}
		var order []uint64
		for i, r := range recs {
			if r.Offset != uint64(i) {
				bad("%s: record %d has offset %d (a gap or reordering)", name, i, r.Offset)
				break
			}
			k := [2]uint64{r.Producer, r.Seq}
			if at, dup := seen[k]; dup {
				bad("%s: producer %x seq %d consumed twice, at offsets %d and %d", name, r.Producer, r.Seq, at, r.Offset)
			}
			seen[k] = r.Offset
			if i > 0 && r.Epoch < recs[i-1].Epoch {
				bad("%s: offset %d has epoch %d after epoch %d", name, r.Offset, r.Epoch, recs[i-1].Epoch)
			}
			sp := epochs[r.Epoch]
			if sp == nil {
				sp = &span{broker: r.Broker, from: r.Accepted, to: r.Accepted}
				epochs[r.Epoch] = sp
				order = append(order, r.Epoch)
			}
			if sp.broker != r.Broker {
				bad("%s: epoch %d accepted by brokers %d and %d", name, r.Epoch, sp.broker, r.Broker)
			}
			sp.from, sp.to = min(sp.from, r.Accepted), max(sp.to, r.Accepted)
		}
		for i := 1; i < len(order); i++ {
			a, b := epochs[order[i-1]], epochs[order[i]]
			if a.to >= b.from {
				bad("%s: epochs %d (broker %d) and %d (broker %d) overlap in time by %dns", name, order[i-1], a.broker, order[i], b.broker, a.to-b.from)
			}
		}
	}
	for _, a := range acks {
		recs := consumed[a.Partition]
		if a.Offset >= uint64(len(recs)) {
			bad("%s: acknowledged offset %d (producer %x seq %d) never consumed (consumed %d)", a.Partition, a.Offset, a.Producer, a.Seq, len(recs))
			continue
		}
		r := recs[a.Offset]
		if r.Producer != a.Producer || r.Seq != a.Seq || r.Payload != a.Payload || r.Epoch != a.Epoch || r.Broker != a.Broker {
			bad("%s offset %d: acknowledged %x/%d %q epoch %d broker %d, consumed %x/%d %q epoch %d broker %d", a.Partition, a.Offset,
				a.Producer, a.Seq, a.Payload, a.Epoch, a.Broker, r.Producer, r.Seq, r.Payload, r.Epoch, r.Broker)
		}
	}
	return errors.Join(errs...)
}
