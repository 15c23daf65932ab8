package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/flotilla-raft/flotilla/examples/internal/certs"
)

// runClient runs the client commands: produce, consume, table, move, add,
// remove.
func runClient(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("topics "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	servers := fs.String("servers", "127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003", "broker API addresses, comma-separated")
	timeout := fs.Duration("timeout", 10*time.Second, "how long each request may retry before giving up")
	partition := fs.Int("partition", -1, "produce/consume: only this partition (produce default: by sequence number)")
	from := fs.Uint64("from", 0, "consume: the first offset of each partition")
	follow := fs.Bool("follow", false, "consume: keep waiting for new messages (until interrupted)")
	id := fs.Uint64("id", 0, "add: the new broker's id")
	raftAddr := fs.String("raft", "", "add: the new broker's Raft address")
	api := fs.String("api", "", "add: the new broker's API address")
	// Flags may follow the positional arguments: parse them in turns.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	c, err := NewClient(splitList(*servers))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bad := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "topics %s: "+format+"\n", append([]any{cmd}, args...)...)
		return 2
	}
	withTimeout := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, *timeout) }
	switch cmd {
	case "produce":
		if len(pos) < 2 {
			return bad("want TOPIC MSG...")
		}
		for _, m := range pos[1:] {
			rctx, cancel := withTimeout()
			ack, err := c.Produce(rctx, pos[0], *partition, m)
			cancel()
			if err != nil {
				fmt.Fprintf(stderr, "topics produce: %q: %v\n", m, err)
				return 1
			}
			fmt.Fprintf(stdout, "%s offset %d epoch %d broker %d%s\n", ack.Partition, ack.Offset, ack.Epoch, ack.Broker, dupNote(ack.Duplicate))
		}
	case "consume":
		if len(pos) != 1 {
			return bad("want TOPIC")
		}
		return consume(ctx, c, pos[0], *partition, *from, *follow, *timeout, stdout, stderr)
	case "table":
		rctx, cancel := withTimeout()
		defer cancel()
		v, err := c.Table(rctx)
		if err != nil {
			fmt.Fprintf(stderr, "topics table: %v\n", err)
			return 1
		}
		printTable(stdout, v)
	case "move":
		if len(pos) != 2 {
			return bad("want PARTITION BROKER")
		}
		b, err := strconv.ParseUint(pos[1], 10, 64)
		if err != nil || b == 0 {
			return bad("broker %q: want a non-zero id", pos[1])
		}
		rctx, cancel := withTimeout()
		defer cancel()
		p, err := c.Move(rctx, pos[0], b)
		if err != nil {
			fmt.Fprintf(stderr, "topics move: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: owner %d, follower %s, epoch %d\n", p.Name, p.Owner, brokerName(p.Follower), p.Epoch)
	case "add", "remove":
		if cmd == "remove" {
			if len(pos) != 1 {
				return bad("want ID")
			}
			if *id, err = strconv.ParseUint(pos[0], 10, 64); err != nil {
				return bad("id %q: %v", pos[0], err)
			}
		} else if *id == 0 || *raftAddr == "" || *api == "" || len(pos) > 0 {
			return bad("want --id, --raft and --api")
		}
		rctx, cancel := context.WithTimeout(ctx, max(*timeout, 40*time.Second))
		defer cancel()
		var st *StatusResponse
		if cmd == "add" {
			st, err = c.AddBroker(rctx, *id, *raftAddr, *api)
		} else {
			st, err = c.RemoveBroker(rctx, *id)
		}
		if err != nil {
			fmt.Fprintf(stderr, "topics %s: %v\n", cmd, err)
			return 1
		}
		fmt.Fprintf(stdout, "voters %v, learners %v (leader %d)\n", st.Voters, st.Learners, st.Leader)
	}
	return 0
}

func dupNote(dup bool) string {
	if dup {
		return " (duplicate: stored before)"
	}
	return ""
}

// consume prints the records of topic's partitions (or one) from offset
// from, then with follow keeps polling.
func consume(ctx context.Context, c *Client, topic string, partition int, from uint64, follow bool, timeout time.Duration,
	stdout, stderr io.Writer) int {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	v, err := c.Table(rctx)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "topics consume: %v\n", err)
		return 1
	}
	next := map[string]uint64{}
	for _, p := range v.Partitions {
		if p.Topic == topic && (partition < 0 || p.Name == PartitionName(topic, partition)) {
			next[p.Name] = from
		}
	}
	if len(next) == 0 {
		fmt.Fprintf(stderr, "topics consume: no topic %q (or partition %d)\n", topic, partition)
		return 1
	}
	for {
		got := 0
		for _, name := range slices.Sorted(maps.Keys(next)) {
			rctx, cancel := context.WithTimeout(ctx, timeout)
			res, err := c.Consume(rctx, name, next[name], 500)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return 0
				}
				fmt.Fprintf(stderr, "topics consume: %s: %v\n", name, err)
				return 1
			}
			for _, r := range res.Records {
				fmt.Fprintf(stdout, "%s\t%d\tepoch %d\tbroker %d\t%s\n", name, r.Offset, r.Epoch, r.Broker, r.Payload)
				next[name] = r.Offset + 1
			}
			got += len(res.Records)
		}
		if !follow && got == 0 {
			return 0
		}
		if got == 0 {
			select {
			case <-ctx.Done():
				return 0
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// printTable prints the assignment table.
func printTable(out io.Writer, v *View) {
	fmt.Fprintf(out, "leader %d, voters %v, applied %d\n", v.Leader, v.Voters, v.Applied)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PARTITION\tOWNER\tFOLLOWER\tEPOCH\tREADY\tHOLDERS")
	for _, p := range v.Partitions {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%v\t%v\n", p.Name, brokerName(p.Owner), brokerName(p.Follower), p.Epoch, p.Ready, p.Holders)
	}
	tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// runCerts is `topics certs`: the mutual-TLS files of the brokers.
func runCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("topics certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", ".", "directory of ca.pem, ca-key.pem and nodeN.pem, nodeN-key.pem (an existing CA there is reused)")
	nodes := fs.String("nodes", "", "the brokers: id=host,... (host: the IP address or name peers dial)")
	days := fs.Int("days", 365, "validity of the certificates, in days")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	hosts := map[uint64]string{}
	for _, part := range splitList(*nodes) {
		k, v, ok := strings.Cut(part, "=")
		id, err := strconv.ParseUint(k, 10, 64)
		if !ok || err != nil || id == 0 || v == "" {
			fmt.Fprintf(stderr, "topics certs: --nodes: %q is not id=host\n", part)
			return 2
		}
		hosts[id] = v
	}
	if len(hosts) == 0 || *days <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "topics certs: want --nodes id=host,... and positive --days")
		return 2
	}
	files, err := certs.Issue(*dir, 1, hosts, time.Duration(*days)*24*time.Hour)
	if err != nil {
		fmt.Fprintf(stderr, "topics certs: %v\n", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintln(stdout, f)
	}
	return 0
}
