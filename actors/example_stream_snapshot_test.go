package actors_test

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/flotilla-raft/flotilla/actors"
	"github.com/flotilla-raft/flotilla/messages"
)

// journal is a StreamSnapshotter: its state is an append-only list of
// "key=value" commands. Entries below a length never change, so a view is
// just that length: taking it costs nothing, and its WriteTo can run while
// Apply appends more.
type journal struct{ cmds []string }

func (j *journal) Apply(e *messages.Entry) any {
	j.cmds = append(j.cmds, string(e.Data))
	return len(j.cmds)
}

func (j *journal) Query(q any) (any, error) {
	for i := len(j.cmds) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(j.cmds[i], "="); k == q.(string) {
			return v, nil
		}
	}
	return "", nil
}

// SnapshotView runs on the applier between two Apply calls.
func (j *journal) SnapshotView() (actors.SnapshotView, error) {
	return journalView(j.cmds[:len(j.cmds):len(j.cmds)]), nil
}

// RestoreFrom runs on the applier and replaces the whole state.
func (j *journal) RestoreFrom(meta actors.SnapshotMeta, r io.Reader) error {
	var cmds []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		cmds = append(cmds, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	j.cmds = cmds
	fmt.Printf("restored %d commands (meta.Index is the last entry they cover)\n", len(cmds))
	return nil
}

type journalView []string

// WriteTo runs on a goroutine of its own, while the applier goes on.
func (v journalView) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	for _, c := range v {
		k, _ := bw.WriteString(c + "\n")
		n += int64(k)
	}
	return n, bw.Flush()
}

func (v journalView) Release() {}

// A state machine whose snapshot streams: the node writes it into the
// store's snapshot files (memstore keeps them in memory, pebblestore on
// disk) while Apply goes on, and a restart restores it from a reader.
func ExampleStreamSnapshotter() {
	snapshotThenRestart(func() actors.StateMachine { return &journal{} }, []string{"a=1", "b=2", "b=3"}, "b")
	// Output:
	// snapshot taken
	// restored 3 commands (meta.Index is the last entry they cover)
	// after the restart, b = 3
}
