package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// markdown renders the run as a markdown document: settings, the disk's
// fsync rate, one table row per cell, the bars, the node side's
// allocations, and what each row runs. svgName, when set, embeds the
// chart.
func markdown(rep *report, svgName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Flotilla vs etcd raft vs hashicorp/raft\n\n")
	fmt.Fprintf(&b, "- Command: `%s` (in bench/)\n", rep.Command)
	fmt.Fprintf(&b, "- Run: %s, %s, %d CPUs, host %s\n", rep.Started.Format(time.RFC3339), rep.GoVersion, rep.CPUs, rep.Host)
	fmt.Fprintf(&b, "- Workload: 3 nodes, C closed-loop clients each proposing 128 bytes to the leader and waiting until it is applied on the leader; %v warm-up, %v measured window per cell; %s\n",
		rep.Warmup, rep.Window, runsText(rep.Runs))
	fmt.Fprintf(&b, "- Disk: %s\n\n", rep.Fsync)
	if svgName != "" {
		fmt.Fprintf(&b, "![ops/s per library and cell](%s)\n\n", svgName)
	}
	b.WriteString("| mode | C | library | ops/s | p50 | p99 | max | errors | allocs/op | KiB/op | CPU/op | msgs/op |\n")
	b.WriteString("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, c := range rep.Cells {
		if c.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %d | %s | failed: %s | | | | | | | | |\n", c.Mode, c.Clients, c.Lib, strings.ReplaceAll(c.Skipped, "|", "/"))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %v | %v | %v | %d | %s | %s | %s | %s |\n",
			c.Mode, c.Clients, c.Lib, opsText(c), round(c.P50), round(c.P99), round(c.Max), c.Errors,
			orNA(c.AllocsPerOp, "%.0f", 1), orNA(c.BytesPerOp, "%.1f", 1024), cpuOrNA(c.CPUPerOp), orNA(c.MsgsPerOp, "%.2f", 1))
	}
	b.WriteString("\nallocs/op, KiB/op and CPU/op are process-wide over the window divided by the operations: all three nodes and the clients for the in-process rows; n/a for flotilla-3proc (its nodes run in other processes). msgs/op is the Raft messages between the nodes (appends, acknowledgements, heartbeats, votes) per committed operation, for the libraries that count them (flotilla, etcd).")
	if rep.Runs > 1 {
		b.WriteString(" Each figure is the median over the runs (the runs' ops/s in brackets).")
	}
	b.WriteString("\n")

	if bars := checkBars(rep); len(bars) > 0 {
		b.WriteString("\n## Bars (ratios within this run)\n\n")
		b.WriteString("Flotilla is the README path (row flotilla); a peer's strongest row in a cell is its row with the higher ops/s there, and every comparison of that bar uses that row. The tuned row is shown for reference; it decides nothing.\n\n")
		b.WriteString("| bar | measured | holds | flotilla-tuned |\n|---|---|---|---|\n")
		for _, br := range bars {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", br.name, br.measured, holdsText(br.holds), br.tuned)
		}
	}

	if len(rep.Allocs) > 0 {
		b.WriteString("\n## Node-side allocations per committed proposal\n\n")
		b.WriteString("Every allocation recorded (runtime.MemProfileRate = 1) while the clients proposed; those made on a client's goroutine (the proposal, ProposeAndWait's future) are the client's, all others (the leader and both followers: actors, mailboxes, transport, store, state machine, the answer) the node side's.\n\n")
		b.WriteString("| cell | proposals | node allocs/op | node B/op | client allocs/op | largest node-side sources (allocs/op) |\n|---|--:|--:|--:|--:|---|\n")
		for _, a := range rep.Allocs {
			var top []string
			for _, s := range a.Top[:min(len(a.Top), 6)] {
				top = append(top, fmt.Sprintf("%s %.1f", shortFunc(s.Func), s.AllocsPerOp))
			}
			fmt.Fprintf(&b, "| %s/%s/C=%d | %d | %.1f | %.0f | %.1f | %s |\n", a.Lib, a.Mode, a.Clients, a.Ops, a.NodeAllocsPerOp, a.NodeBytesPerOp, a.ClientAllocsPerOp, strings.Join(top, ", "))
		}
	}

	var diags []string
	for _, c := range rep.Cells {
		if c.Diag != "" {
			diags = append(diags, fmt.Sprintf("- %s: %s\n", c.cellSpec, c.Diag))
		}
	}
	if len(diags) > 0 {
		b.WriteString("\n## Internals over the window\n\nSynced writes per second on the leader and per follower (each covering that many operations on average), mean time of one, and messages between nodes per operation.\n\n")
		b.WriteString(strings.Join(diags, ""))
	}

	b.WriteString("\n## Rows\n\n")
	seen := map[string]bool{}
	for _, c := range rep.Cells {
		k := c.Lib + "/" + c.Mode
		if seen[k] {
			continue
		}
		seen[k] = true
		fmt.Fprintf(&b, "- %s, %s: %s\n", c.Lib, c.Mode, c.Note)
	}
	b.WriteString("\nTimings: the flotilla row uses the README's (100 ms ticks, election after 10 ticks, heartbeat every tick); every other row 10 ms ticks, a 500 ms election timeout and 50 ms heartbeats; PreVote and CheckQuorum on where the library has them.\n")
	return b.String()
}

func runsText(runs int) string {
	if runs <= 1 {
		return "one run per cell"
	}
	return fmt.Sprintf("median of %d runs per cell, the rows in alternating order", runs)
}

func opsText(c cellResult) string {
	if len(c.RunOpsPerSec) < 2 {
		return fmt.Sprintf("%.0f", c.OpsPerSec)
	}
	var runs []string
	for _, v := range c.RunOpsPerSec {
		runs = append(runs, fmt.Sprintf("%.0f", v))
	}
	return fmt.Sprintf("%.0f [%s]", c.OpsPerSec, strings.Join(runs, ", "))
}

// shortFunc drops the module path of a function name.
func shortFunc(fn string) string {
	fn = strings.TrimPrefix(fn, "github.com/flotilla-raft/flotilla/")
	fn = strings.TrimPrefix(fn, "github.com/asynkron/protoactor-go/")
	return fn
}

func orNA(v float64, format string, div float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf(format, v/div)
}

func cpuOrNA(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}

func holdsText(ok bool) string {
	if ok {
		return "holds"
	}
	return "**does not hold**"
}

type bar struct {
	name     string
	measured string
	holds    bool
	tuned    string // the same comparison for flotilla-tuned, for reference
}

// find returns the measured cell, if it ran.
func find(rep *report, lib, mode string, clients int) (cellResult, bool) {
	for _, c := range rep.Cells {
		if c.Lib == lib && c.Mode == mode && c.Clients == clients && c.Skipped == "" {
			return c, true
		}
	}
	return cellResult{}, false
}

// strongest returns the peer's row with the highest ops/s in the cell,
// among the rows whose names start with peer ("etcd", "hashicorp").
func strongest(rep *report, peer, mode string, clients int) (cellResult, bool) {
	var best cellResult
	found := false
	for _, c := range rep.Cells {
		if (c.Lib == peer || strings.HasPrefix(c.Lib, peer+"-")) && c.Mode == mode && c.Clients == clients && c.Skipped == "" {
			if !found || c.OpsPerSec > best.OpsPerSec {
				best, found = c, true
			}
		}
	}
	return best, found
}

// allocBarLimit is the bar on the node side's allocations per
// committed proposal.
const allocBarLimit = 20

// checkBars evaluates the bars of issue 19 on the medians this run
// measured (a bar whose cells did not run is left out).
func checkBars(rep *report) []bar {
	var out []bar
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	// each evaluates one comparison for flotilla and, for reference,
	// flotilla-tuned.
	each := func(mode string, clients int, f func(fl cellResult) (string, bool)) (string, bool, string, bool) {
		fl, ok := find(rep, "flotilla", mode, clients)
		if !ok {
			return "", false, "", false
		}
		m, h := f(fl)
		tuned := "n/a"
		if t, ok := find(rep, "flotilla-tuned", mode, clients); ok {
			tm, th := f(t)
			tuned = tm + " (" + map[bool]string{true: "holds", false: "does not hold"}[th] + ")"
		}
		return m, h, tuned, true
	}
	add := func(name, mode string, clients int, f func(fl cellResult) (string, bool)) {
		if m, h, t, ok := each(mode, clients, f); ok {
			out = append(out, bar{name: name, measured: m, holds: h, tuned: t})
		}
	}
	for _, c := range []int{64, 512} {
		e, okE := strongest(rep, "etcd", modeDurable, c)
		h, okH := strongest(rep, "hashicorp", modeDurable, c)
		if okE {
			add(fmt.Sprintf("durable C=%d: ops/s ≥ 1.5× strongest etcd (%s)", c, e.Lib), modeDurable, c, func(f cellResult) (string, bool) {
				r := ratio(f.OpsPerSec, e.OpsPerSec)
				return fmt.Sprintf("%.2f× (%.0f vs %.0f)", r, f.OpsPerSec, e.OpsPerSec), r >= 1.5
			})
		}
		if okH {
			add(fmt.Sprintf("durable C=%d: ops/s ≥ 3× strongest hashicorp (%s)", c, h.Lib), modeDurable, c, func(f cellResult) (string, bool) {
				r := ratio(f.OpsPerSec, h.OpsPerSec)
				return fmt.Sprintf("%.2f× (%.0f vs %.0f)", r, f.OpsPerSec, h.OpsPerSec), r >= 3
			})
		}
		if okE && okH {
			add(fmt.Sprintf("durable C=%d: p99 ≤ %s's and %s's", c, e.Lib, h.Lib), modeDurable, c, func(f cellResult) (string, bool) {
				return fmt.Sprintf("%v vs %v, %v", round(f.P99), round(e.P99), round(h.P99)), f.P99 <= e.P99 && f.P99 <= h.P99
			})
		}
	}
	if e, ok := strongest(rep, "etcd", modeDurable, 1); ok {
		add(fmt.Sprintf("durable C=1: p50 ≤ strongest etcd's (%s)", e.Lib), modeDurable, 1, func(f cellResult) (string, bool) {
			return fmt.Sprintf("%v vs %v", round(f.P50), round(e.P50)), f.P50 <= e.P50
		})
	}
	for _, c := range []int{1, 64, 512} {
		if e, ok := strongest(rep, "etcd", modeMemory, c); ok {
			add(fmt.Sprintf("memory C=%d: ops/s ≥ 1.0× strongest etcd (%s)", c, e.Lib), modeMemory, c, func(f cellResult) (string, bool) {
				r := ratio(f.OpsPerSec, e.OpsPerSec)
				return fmt.Sprintf("%.2f× (%.0f vs %.0f)", r, f.OpsPerSec, e.OpsPerSec), r >= 1
			})
		}
	}
	for _, a := range rep.Allocs {
		out = append(out, bar{
			name:     fmt.Sprintf("node-side allocations per committed proposal ≤ %d (%s, C=%d)", allocBarLimit, a.Mode, a.Clients),
			measured: fmt.Sprintf("%.1f", a.NodeAllocsPerOp),
			holds:    a.NodeAllocsPerOp <= allocBarLimit,
			tuned:    "n/a",
		})
	}
	return out
}

// readmeBegin and readmeEnd delimit the generated part of ../README.md.
const (
	readmeBegin = "<!-- bench:begin (generated by `cd bench && go run . -publish ...`; do not edit) -->"
	readmeEnd   = "<!-- bench:end -->"
)

// readmeSection renders the README's performance table: the run's date,
// command and fsync rate, one line per cell with every row's ops/s (p50 /
// p99), and the bars.
func readmeSection(rep *report) string {
	var libs []string
	for _, c := range rep.Cells {
		if !slices.Contains(libs, c.Lib) {
			libs = append(libs, c.Lib)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", readmeBegin)
	fmt.Fprintf(&b, "One run (`cd bench && %s`, %s, %d CPUs, disk %s fsyncs/s; %s, %v windows); ops/s (p50 / p99):\n\n",
		rep.Command, rep.Started.Format("2006-01-02"), rep.CPUs, groupThousands(rep.Fsync.PerSec), runsText(rep.Runs), rep.Window)
	b.WriteString("| mode | C |")
	for _, l := range libs {
		fmt.Fprintf(&b, " %s |", l)
	}
	b.WriteString("\n| --- | --: |" + strings.Repeat(" --- |", len(libs)) + "\n")
	type key struct {
		mode string
		c    int
	}
	var cells []key
	for _, c := range rep.Cells {
		if k := (key{c.Mode, c.Clients}); !slices.Contains(cells, k) {
			cells = append(cells, k)
		}
	}
	for _, k := range cells {
		fmt.Fprintf(&b, "| %s | %d |", k.mode, k.c)
		for _, l := range libs {
			if r, ok := find(rep, l, k.mode, k.c); ok {
				fmt.Fprintf(&b, " %s (%v / %v) |", groupThousands(r.OpsPerSec), round(r.P50), round(r.P99))
			} else {
				b.WriteString(" n/a |")
			}
		}
		b.WriteString("\n")
	}
	if bars := checkBars(rep); len(bars) > 0 {
		b.WriteString("\nThe bars of issue 19 in that run (Flotilla = the README path):\n\n| bar | measured | |\n| --- | --- | --- |\n")
		for _, br := range bars {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", br.name, br.measured, holdsText(br.holds))
		}
	}
	fmt.Fprintf(&b, "%s\n", readmeEnd)
	return b.String()
}

// replaceReadmeSection returns readme with its generated section replaced.
func replaceReadmeSection(readme, section string) (string, error) {
	i := strings.Index(readme, readmeBegin)
	j := strings.Index(readme, readmeEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("README has no %q ... %q section", readmeBegin, readmeEnd)
	}
	return readme[:i] + section + readme[j+len(readmeEnd)+1:], nil
}

func groupThousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// ---- SVG chart ----

var libColors = map[string]string{
	"flotilla":        "#1f77b4",
	"flotilla-tuned":  "#9ecae1",
	"flotilla-3proc":  "#6baed6",
	"etcd":            "#2ca02c",
	"etcd-async":      "#98df8a",
	"hashicorp":       "#ff7f0e",
	"hashicorp-batch": "#ffbb78",
}

func libColor(lib string) string {
	if c, ok := libColors[lib]; ok {
		return c
	}
	return "#7f7f7f"
}

// chartSVG draws ops/s as small multiples: one panel per (mode, C), one
// bar per library, each panel on its own linear scale.
func chartSVG(rep *report) string {
	var modes, libs []string
	var clients []int
	for _, c := range rep.Cells {
		if !slices.Contains(modes, c.Mode) {
			modes = append(modes, c.Mode)
		}
		if !slices.Contains(clients, c.Clients) {
			clients = append(clients, c.Clients)
		}
		if !slices.Contains(libs, c.Lib) {
			libs = append(libs, c.Lib)
		}
	}
	panelW := max(300, 70*len(libs))
	const (
		panelH     = 230
		marginL    = 60
		top        = 70
		plotTop    = 30 // inside a panel: title above the plot
		plotBottom = 30 // inside a panel: labels below the plot
	)
	width := marginL + panelW*max(len(clients), 1) + 20
	height := top + panelH*max(len(modes), 1) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">Proposals/s, 3 nodes, 128-byte commands (higher is better)</text>`+"\n", marginL)
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#555">%s, %s, %d CPUs; disk %.0f fsyncs/s; %v window; %s</text>`+"\n", marginL, rep.Started.Format("2006-01-02"), xmlEscape(rep.GoVersion), rep.CPUs, rep.Fsync.PerSec, rep.Window, runsText(rep.Runs))
	// Legend.
	lx := marginL
	for _, l := range libs {
		fmt.Fprintf(&b, `<rect x="%d" y="50" width="12" height="12" fill="%s"/><text x="%d" y="60">%s</text>`+"\n", lx, libColor(l), lx+16, xmlEscape(l))
		lx += 24 + 8*len(l)
	}
	for mi, mode := range modes {
		for ci, c := range clients {
			x0 := marginL + ci*panelW
			y0 := top + mi*panelH
			plotH := panelH - plotTop - plotBottom
			plotW := panelW - 30
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s, C=%d</text>`+"\n", x0, y0+18, mode, c)
			var maxV float64
			for _, l := range libs {
				if r, ok := find(rep, l, mode, c); ok {
					maxV = max(maxV, r.OpsPerSec)
				}
			}
			step := niceStep(maxV)
			top := step * float64(int(maxV/step)+1)
			base := y0 + plotTop + plotH
			// Grid and axis labels.
			for v := 0.0; v <= top+step/2; v += step {
				y := float64(base) - v/top*float64(plotH)
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, x0, y, x0+plotW, y)
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555" font-size="10">%s</text>`+"\n", x0-4, y+3, humanOps(v))
			}
			barW := float64(plotW) / float64(len(libs)) * 0.7
			for li, l := range libs {
				bx := float64(x0) + (float64(li)+0.15)*float64(plotW)/float64(len(libs))
				r, ok := find(rep, l, mode, c)
				if !ok {
					fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#999" font-size="10">n/a</text>`+"\n", bx+barW/2, base-4)
					continue
				}
				h := r.OpsPerSec / top * float64(plotH)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s C=%d: %.0f ops/s, p50 %v, p99 %v</title></rect>`+"\n",
					bx, float64(base)-h, barW, h, libColor(l), xmlEscape(l), mode, c, r.OpsPerSec, round(r.P50), round(r.P99))
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%s</text>`+"\n", bx+barW/2, float64(base)-h-3, humanOps(r.OpsPerSec))
				fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555" font-size="9">p99 %v</text>`+"\n", bx+barW/2, base+13, round(r.P99))
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", x0, base, x0+plotW, base)
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep returns a round grid step giving about 4 lines up to v.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	raw := v / 4
	mag := 1.0
	for mag*10 <= raw {
		mag *= 10
	}
	for mag > raw {
		mag /= 10
	}
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func humanOps(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
