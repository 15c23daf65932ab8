package actors_test

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/tracingtest"
	"go.opentelemetry.io/otel/trace"
)

// A linearizable read is one trace, on the leader and through a follower:
// raft.read (server) holding raft.read.index and then raft.read.wait; a
// follower's read index round holds the leader's raft.read.index.serve.
func TestReadTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := tracedCluster(t)
		lead := c.waitLeader()
		if _, err := c.propose(lead, "x"); err != nil {
			t.Fatal(err)
		}
		follower := c.others(lead)[0]
		for _, id := range []uint64{lead, follower} {
			if _, err := actors.Request[*actors.ReadResponse](c.sys.Root, c.node(id), &actors.Read{Query: "n"}, 5*time.Second); err != nil {
				t.Fatalf("read on %d: %v", id, err)
			}
		}
		eventually(t, rec, func(r recorded) (p problems) {
			reads := map[int64]sdktrace.ReadOnlySpan{}
			for _, s := range r.named(tracing.SpanRead) {
				reads[nodeOf(s)] = s
			}
			for _, id := range []uint64{lead, follower} {
				rd, ok := reads[int64(id)]
				if !ok {
					p.addf("no read span on node %d", id)
					continue
				}
				if rd.Parent().IsValid() || rd.SpanKind() != trace.SpanKindServer || attrOf(rd, tracing.AttrIndex).AsInt64() == 0 {
					p.addf("read on %d: parent %v kind %v index %v, want a server root with its read index", id, rd.Parent().SpanID(), rd.SpanKind(), attrOf(rd, tracing.AttrIndex).String())
				}
				ix, wait := r.children(rd, tracing.SpanReadIndex), r.children(rd, tracing.SpanReadWait)
				if len(ix) != 1 || len(wait) != 1 {
					p.addf("read on %d holds %d read.index and %d read.wait, want 1 each", id, len(ix), len(wait))
					continue
				}
				p.child(r, ix[0], rd, trace.SpanKindInternal)
				p.child(r, wait[0], rd, trace.SpanKindInternal)
				if r.ended[ix[0].SpanContext().SpanID()] > r.ended[wait[0].SpanContext().SpanID()] {
					p.addf("read on %d: the wait ended before the read index round", id)
				}
				serve := r.children(ix[0], tracing.SpanReadIndexServe)
				switch {
				case id == lead && len(serve) != 0:
					p.addf("the leader's own read holds a read.index.serve")
				case id == follower && (len(serve) != 1 || nodeOf(serve[0]) != int64(lead)):
					p.addf("the follower's read index round holds %d read.index.serve, want the leader's", len(serve))
				case id == follower:
					p.child(r, serve[0], ix[0], trace.SpanKindServer)
				}
			}
			return p
		})
	})
}

// A snapshot sent to a follower that fell behind is one trace:
// raft.snapshot.send (client, leader) holding the follower's
// raft.snapshot.install (server), which holds its persist and the state
// machine's raft.snapshot.restore. Taking the snapshot is raft.snapshot.take.
func TestSnapshotInstallTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tp, rec := tracingtest.NewProvider(t)
		c := newClusterWith(t, 3, func(c *cluster) {
			c.tp = tp
			c.configure = func(_ uint64, cfg *actors.Config) { cfg.StateMachine = snapSM{cfg.StateMachine.(*listSM)} }
		})
		lead := c.waitLeader()
		behind := c.others(lead)[0]
		c.crash(behind)
		const n = 80 // more than the 64 entries a snapshot keeps
		for i := range n {
			if _, err := c.propose(lead, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := actors.Request[*actors.TakeSnapshotResponse](c.sys.Root, c.node(lead), &actors.TakeSnapshot{}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		c.restart(behind)
		c.waitApplied(n, behind)
		eventually(t, rec, func(r recorded) (p problems) {
			if len(r.named(tracing.SpanSnapshotTake)) == 0 {
				p.addf("no snapshot.take span")
			}
			var send sdktrace.ReadOnlySpan
			for _, s := range r.named(tracing.SpanSnapshotSend) {
				if attrOf(s, tracing.AttrPeer).AsInt64() == int64(behind) && attrOf(s, tracing.AttrResult).AsString() == "acked" {
					send = s
				}
			}
			if send == nil {
				return append(p, fmt.Sprintf("no acknowledged snapshot.send to %d", behind))
			}
			if send.Parent().IsValid() || send.SpanKind() != trace.SpanKindClient || nodeOf(send) != int64(lead) {
				p.addf("snapshot.send: parent %v kind %v node %d, want a client root on the leader", send.Parent().SpanID(), send.SpanKind(), nodeOf(send))
			}
			inst := r.children(send, tracing.SpanSnapshotInstall)
			if len(inst) != 1 || nodeOf(inst[0]) != int64(behind) {
				return append(p, fmt.Sprintf("snapshot.send holds %d snapshot.install spans, want node %d's", len(inst), behind))
			}
			p.child(r, inst[0], send, trace.SpanKindServer)
			if len(r.children(inst[0], tracing.SpanPersist)) != 1 {
				p.addf("snapshot.install holds no persist span")
			}
			if len(r.children(inst[0], tracing.SpanSnapshotRestore)) != 1 {
				p.addf("snapshot.install holds no snapshot.restore span")
			}
			return p
		})
	})
}

// A configuration change that replaces two voters goes through the joint
// configuration: raft.config.change (server, leader) holds its entry's
// replication and commit, and raft.config.leave_joint from the joint
// configuration's commit to the final one's; it ends when the final
// configuration commits.
func TestConfigChangeTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := tracedCluster(t)
		lead := c.waitLeader()
		target := &messages.ClusterConfig{Settings: c.boot.Settings}
		for _, m := range c.boot.Voters {
			if m.Id == lead {
				target.Voters = append(target.Voters, m)
			}
		}
		if _, err := actors.Request[*actors.ChangeConfigResponse](c.sys.Root, c.node(lead), &actors.ChangeConfig{Config: target}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		eventually(t, rec, func(r recorded) (p problems) {
			changes := r.named(tracing.SpanConfigChange)
			if len(changes) != 1 {
				return problems{fmt.Sprintf("%d ended config.change spans, want 1", len(changes))}
			}
			cc := changes[0]
			if cc.Parent().IsValid() || cc.SpanKind() != trace.SpanKindServer || nodeOf(cc) != int64(lead) {
				p.addf("config.change: parent %v kind %v node %d, want a server root on the leader", cc.Parent().SpanID(), cc.SpanKind(), nodeOf(cc))
			}
			p.result(cc, "committed")
			var events []string
			for _, e := range cc.Events() {
				events = append(events, e.Name)
			}
			if !slices.Equal(events, []string{"joint configuration committed", "configuration committed"}) {
				p.addf("config.change events %q, want the joint then the final commit", events)
			}
			lj := r.children(cc, tracing.SpanLeaveJoint)
			if len(lj) != 1 {
				p.addf("config.change holds %d leave_joint spans, want 1", len(lj))
			} else {
				p.child(r, lj[0], cc, trace.SpanKindInternal)
			}
			for _, name := range []string{tracing.SpanReplicate, tracing.SpanCommit} {
				if len(r.children(cc, name)) == 0 {
					p.addf("config.change holds no %s span", name)
				}
			}
			return p
		})
	})
}

// A leadership transfer is one trace: raft.transfer (server, the old
// leader) holds the transferee's raft.election, won, and ends after it.
func TestTransferTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, rec := tracedCluster(t)
		lead := c.waitLeader()
		if _, err := c.propose(lead, "x"); err != nil {
			t.Fatal(err)
		}
		c.waitApplied(1, c.ids...)
		to := c.others(lead)[0]
		res, err := actors.Request[*actors.TransferLeadershipResponse](c.sys.Root, c.node(lead), &actors.TransferLeadership{To: to}, 5*time.Second)
		if err != nil || res.Leader != to {
			t.Fatalf("transfer to %d: %+v %v", to, res, err)
		}
		eventually(t, rec, func(r recorded) (p problems) {
			tr := r.named(tracing.SpanTransfer)
			if len(tr) != 1 {
				return problems{fmt.Sprintf("%d transfer spans, want 1", len(tr))}
			}
			if tr[0].Parent().IsValid() || tr[0].SpanKind() != trace.SpanKindServer || nodeOf(tr[0]) != int64(lead) {
				p.addf("transfer: parent %v kind %v node %d, want a server root on %d", tr[0].Parent().SpanID(), tr[0].SpanKind(), nodeOf(tr[0]), lead)
			}
			p.result(tr[0], "transferred")
			el := r.children(tr[0], tracing.SpanElection)
			if len(el) != 1 || nodeOf(el[0]) != int64(to) {
				return append(p, fmt.Sprintf("transfer holds %d election spans, want the transferee %d's", len(el), to))
			}
			p.child(r, el[0], tr[0], trace.SpanKindInternal)
			p.result(el[0], "won")
			return p
		})
	})
}
