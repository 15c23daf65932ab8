package membership

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/flotilla-raft/flotilla/messages"
)

// TestDataDriven runs the scripts in testdata/:
//
//	config voters=(1,2,3) [outgoing=(..)] [learners=(..)] [heartbeat=N election=N]
//	    sets the configuration in force (not validated).
//	validate ...same arguments...
//	    prints "ok" or the problems of that configuration.
//	enter ...same arguments...      (the target)
//	add-learner id=N | remove id=N | promote id=N | demote id=N
//	    build the target from the configuration in force; Enter it;
//	    print the result, which becomes the configuration in force
//	    (as if committed), or the error, leaving it unchanged.
//	leave
//	    LeaveJoint the configuration in force, likewise.
//	committed [match=(id:index,..)]
//	    prints the index committed by the configuration in force.
//	vote [votes=(id:y|n,..)]
//	    prints the outcome of the votes in the configuration in force.
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var cur *messages.ClusterConfig
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			step := func(next *messages.ClusterConfig, err error) string {
				if err != nil {
					return "error: " + err.Error()
				}
				cur = next
				return show(cur)
			}
			switch d.Cmd {
			case "config":
				cur = parseConfig(t, d)
				return show(cur)
			case "validate":
				if err := Validate(parseConfig(t, d)); err != nil {
					return err.Error()
				}
				return "ok"
			case "enter":
				return step(Enter(cur, parseConfig(t, d)))
			case "add-learner":
				id := idArg(t, d)
				return step(Enter(cur, AddLearner(cur, member(id))))
			case "remove":
				return step(Enter(cur, Remove(cur, idArg(t, d))))
			case "promote":
				return step(Enter(cur, Promote(cur, idArg(t, d))))
			case "demote":
				return step(Enter(cur, Demote(cur, idArg(t, d))))
			case "leave":
				return step(LeaveJoint(cur))
			case "committed":
				match := pairs(t, d, "match")
				ci := JointOf(cur).CommittedIndex(func(id uint64) uint64 {
					v, _ := strconv.ParseUint(match[id], 10, 64)
					return v
				})
				if ci == ^uint64(0) {
					return "max"
				}
				return fmt.Sprint(ci)
			case "vote":
				votes := map[uint64]bool{}
				for id, v := range pairs(t, d, "votes") {
					votes[id] = v == "y"
				}
				return JointOf(cur).VoteResult(votes).String()
			}
			t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
			return ""
		})
	})
}

func member(id uint64) *messages.Member {
	return &messages.Member{Id: id, Address: fmt.Sprintf("n%d", id)}
}

func idArg(t *testing.T, d *datadriven.TestData) uint64 {
	var id uint64
	d.ScanArgs(t, "id", &id)
	return id
}

func ids(t *testing.T, d *datadriven.TestData, key string) []*messages.Member {
	arg, ok := d.Arg(key)
	if !ok {
		return nil
	}
	var ms []*messages.Member
	for _, v := range arg.Vals {
		if v == "" {
			continue // key=()
		}
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s: %s=%v: %v", d.Pos, key, arg.Vals, err)
		}
		ms = append(ms, member(id))
	}
	return ms
}

func pairs(t *testing.T, d *datadriven.TestData, key string) map[uint64]string {
	out := map[uint64]string{}
	arg, ok := d.Arg(key)
	if !ok {
		return out
	}
	for _, v := range arg.Vals {
		if v == "" {
			continue // key=()
		}
		k, val, _ := strings.Cut(v, ":")
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			t.Fatalf("%s: %s=%v: %v", d.Pos, key, arg.Vals, err)
		}
		out[id] = val
	}
	return out
}

func parseConfig(t *testing.T, d *datadriven.TestData) *messages.ClusterConfig {
	cc := &messages.ClusterConfig{Voters: ids(t, d, "voters"), OutgoingVoters: ids(t, d, "outgoing"), Learners: ids(t, d, "learners")}
	if d.HasArg("heartbeat") || d.HasArg("election") {
		cc.Settings = &messages.Settings{}
		d.MaybeScanArgs(t, "heartbeat", &cc.Settings.HeartbeatTicks)
		d.MaybeScanArgs(t, "election", &cc.Settings.ElectionTicks)
	}
	return cc
}

// show prints a configuration as the scripts write it.
func show(cc *messages.ClusterConfig) string {
	list := func(ms []*messages.Member) string {
		s := make([]string, len(ms))
		for i, m := range ms {
			s[i] = fmt.Sprint(m.GetId())
		}
		return "(" + strings.Join(s, ",") + ")"
	}
	out := "voters=" + list(cc.GetVoters())
	if len(cc.GetOutgoingVoters()) > 0 {
		out += " outgoing=" + list(cc.GetOutgoingVoters())
	}
	if len(cc.GetLearners()) > 0 {
		out += " learners=" + list(cc.GetLearners())
	}
	if s := cc.GetSettings(); s != nil {
		out += fmt.Sprintf(" heartbeat=%d election=%d", s.HeartbeatTicks, s.ElectionTicks)
	}
	return out
}
