package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// markdown renders the run as a markdown document: settings, the disk's
// fsync rate, one table row per cell, the ratio bars, and what each row
// runs. svgName, when set, embeds the chart.
func markdown(rep *report, svgName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Flotilla vs hashicorp/raft vs etcd raft\n\n")
	fmt.Fprintf(&b, "- Command: `%s` (in bench/)\n", rep.Command)
	fmt.Fprintf(&b, "- Run: %s, %s, %d CPUs, host %s\n", rep.Started.Format(time.RFC3339), rep.GoVersion, rep.CPUs, rep.Host)
	fmt.Fprintf(&b, "- Workload: 3 nodes, C closed-loop clients each proposing 128 bytes to the leader and waiting until it is applied on the leader; %v warm-up, %v measured window per cell\n", rep.Warmup, rep.Window)
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
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %v | %v | %v | %d | %s | %s | %s | %s |\n",
			c.Mode, c.Clients, c.Lib, c.OpsPerSec, round(c.P50), round(c.P99), round(c.Max), c.Errors,
			orNA(c.AllocsPerOp, "%.0f", 1), orNA(c.BytesPerOp, "%.1f", 1024), cpuOrNA(c.CPUPerOp), orNA(c.MsgsPerOp, "%.2f", 1))
	}
	b.WriteString("\nallocs/op, KiB/op and CPU/op are process-wide over the window divided by the operations: all three nodes and the clients for the in-process rows; n/a for flotilla-3proc (its nodes run in other processes). msgs/op is the Raft messages between the nodes (appends, acknowledgements, heartbeats, votes) per committed operation, for the libraries that count them (flotilla, etcd).\n")

	if bars := checkBars(rep); len(bars) > 0 {
		b.WriteString("\n## Bars (ratios within this run)\n\n| bar | measured | holds |\n|---|---|---|\n")
		for _, br := range bars {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", br.name, br.measured, yesNo(br.holds))
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
	b.WriteString("\nTimings shared by every library: 10 ms ticks, 500 ms election timeout, 50 ms heartbeats; PreVote and CheckQuorum on where the library has them.\n")
	return b.String()
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

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

type bar struct {
	name     string
	measured string
	holds    bool
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

// checkBars evaluates the performance bars of the comparison issue on the
// cells this run measured (a bar whose cells did not run is left out).
func checkBars(rep *report) []bar {
	var out []bar
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	f64, okF := find(rep, "flotilla", modeDurable, 64)
	h64, okH := find(rep, "hashicorp", modeDurable, 64)
	e64, okE := find(rep, "etcd", modeDurable, 64)
	if okF && okH {
		r := ratio(f64.OpsPerSec, h64.OpsPerSec)
		out = append(out, bar{"durable C=64: flotilla ≥ 2× hashicorp ops/s", fmt.Sprintf("%.2f×", r), r >= 2})
		out = append(out, bar{"durable C=64: flotilla p99 ≤ hashicorp p99", fmt.Sprintf("%v vs %v", round(f64.P99), round(h64.P99)), f64.P99 <= h64.P99})
	}
	if okF && okE {
		r := ratio(f64.OpsPerSec, e64.OpsPerSec)
		out = append(out, bar{"durable C=64: flotilla ≥ 1.3× etcd ops/s", fmt.Sprintf("%.2f×", r), r >= 1.3})
		out = append(out, bar{"durable C=64: flotilla p99 ≤ etcd p99", fmt.Sprintf("%v vs %v", round(f64.P99), round(e64.P99)), f64.P99 <= e64.P99})
	}
	if f, ok := find(rep, "flotilla", modeDurable, 512); ok {
		if e, ok := find(rep, "etcd", modeDurable, 512); ok {
			r := ratio(f.OpsPerSec, e.OpsPerSec)
			out = append(out, bar{"durable C=512: flotilla ≥ 1.3× etcd ops/s", fmt.Sprintf("%.2f×", r), r >= 1.3})
		}
	}
	if f, ok := find(rep, "flotilla", modeDurable, 1); ok {
		if e, ok := find(rep, "etcd", modeDurable, 1); ok {
			out = append(out, bar{"durable C=1: flotilla p50 < etcd p50", fmt.Sprintf("%v vs %v", round(f.P50), round(e.P50)), f.P50 < e.P50})
		}
	}
	if f, ok := find(rep, "flotilla", modeMemory, 1); ok {
		if h, ok := find(rep, "hashicorp", modeMemory, 1); ok {
			r := ratio(f.OpsPerSec, h.OpsPerSec)
			out = append(out, bar{"memory C=1: flotilla ≥ hashicorp ops/s", fmt.Sprintf("%.2f×", r), r >= 1})
		}
	}
	return out
}

// ---- SVG chart ----

var libColors = map[string]string{
	"flotilla":       "#1f77b4",
	"flotilla-3proc": "#6baed6",
	"hashicorp":      "#ff7f0e",
	"etcd":           "#2ca02c",
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
	const (
		panelW, panelH = 300, 230
		marginL        = 60
		top            = 70
		plotTop        = 30 // inside a panel: title above the plot
		plotBottom     = 30 // inside a panel: labels below the plot
	)
	width := marginL + panelW*max(len(clients), 1) + 20
	height := top + panelH*max(len(modes), 1) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">Proposals/s, 3 nodes, 128-byte commands (higher is better)</text>`+"\n", marginL)
	fmt.Fprintf(&b, `<text x="%d" y="40" fill="#555">%s, %d CPUs; disk %.0f fsyncs/s; %v window</text>`+"\n", marginL, xmlEscape(rep.GoVersion), rep.CPUs, rep.Fsync.PerSec, rep.Window)
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
