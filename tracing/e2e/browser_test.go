package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flotilla-raft/flotilla/tracing"
	"github.com/flotilla-raft/flotilla/tracing/jaegertest"
)

// Environment and flags of the browser test.
const (
	// envChromium overrides the browser binary (default: chromium, then
	// chromium-browser, google-chrome on $PATH).
	envChromium = "FLOTILLA_CHROMIUM"
	// envShots names the folder where screenshots are saved (default: the
	// test's artifact folder, t.ArtifactDir, kept with -artifacts).
	envShots = "FLOTILLA_SCREENSHOTS"
)

// -screenshots saves a screenshot of every page, not only on failure;
// `make jaeger-screenshots` runs it with FLOTILLA_SCREENSHOTS=docs to
// regenerate docs/jaeger-*.png.
var screenshots = flag.Bool("screenshots", false, "save a screenshot of every trace page (default: only of failing ones)")

// browser is headless Chromium, driven over the DevTools protocol.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's: each page opens a tab of it
}

// chromium starts the browser, or skips t (fails it under
// FLOTILLA_REQUIRE_JAEGER) saying what is missing. The flags make it work in
// a container, quietly: no sandbox (root), no GPU, no QUIC, nothing fetched in
// the background, a new empty profile.
func chromium(t *testing.T) *browser {
	t.Helper()
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	if p := os.Getenv(envChromium); p != "" {
		names = []string{p}
	}
	bin := ""
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		msg := fmt.Sprintf("no browser: none of %v found (install Debian's chromium, or set %s)", names, envChromium)
		if os.Getenv(jaegertest.EnvRequire) != "" {
			t.Fatalf("%s is set and %s", jaegertest.EnvRequire, msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1600, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", bin, err)
	}
	return &browser{t: t, ctx: ctx}
}

// servicesHeader finds the trace page header's count of services.
var servicesHeader = regexp.MustCompile(`Services(\d+)`)

// page is one trace page of the test and what it must show.
type page struct {
	name     string // file name part: docs/jaeger-<name>.png
	trace    jaegertest.Trace
	services []uint64 // service names the page must show
	spans    []string // span names the page must show
}

// TestTracesInJaegerUI runs the three-node scenario against a Jaeger that
// serves the real UI (../shared/jaeger-ui/build), opens each flow's trace
// page in headless Chromium and checks what the page shows: the trace's
// services (all three nodes for a proposal), its span names, and, with every
// span's details opened, no warning (Jaeger's "clock skew adjustment" ones
// among them); and that no election's pre-vote or vote is a trace of its own
// (checked through the query API, which the search page lists). A page that
// fails is saved as a screenshot (timeline and opened details); under
// -screenshots every page is.
func TestTracesInJaegerUI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: three processes, a real Jaeger and a browser")
	}
	ui, err := jaegertest.UIAssets()
	if err != nil {
		if os.Getenv(jaegertest.EnvRequire) != "" {
			t.Fatalf("%s is set and %v", jaegertest.EnvRequire, err)
		}
		t.Skip(err)
	}
	b := chromium(t)
	j := jaegertest.StartWithUI(t, ui)
	p := startProcs(t, j)
	sc := runScenario(t, p)
	ft := findTraces(t, j, sc) // also checks that no vote is a trace of its own
	L, R, I := sc.leader, sc.reader, sc.installer

	pages := []page{
		{"proposal", ft.proposal, []uint64{1, 2, 3}, []string{tracing.SpanPropose, tracing.SpanReplicate, tracing.SpanFollowerAppend, tracing.SpanPersist, tracing.SpanCommit, tracing.SpanApply}},
		{"read", ft.read, []uint64{R, L}, []string{tracing.SpanRead, tracing.SpanReadIndex, tracing.SpanReadIndexServe, tracing.SpanReadWait}},
		{"config-change", ft.config, []uint64{1, 2, 3}, []string{tracing.SpanConfigChange, tracing.SpanReplicate, tracing.SpanFollowerAppend, tracing.SpanCommit}},
		{"snapshot", ft.snapshot, []uint64{L, I}, []string{tracing.SpanSnapshotSend, tracing.SpanSnapshotInstall, tracing.SpanSnapshotRestore, tracing.SpanPersist}},
		{"transfer", ft.transfer, []uint64{L, R}, []string{tracing.SpanTransfer, tracing.SpanElection, tracing.SpanVote, tracing.SpanVoteResponse}},
		{"election", ft.election, []uint64{L}, []string{tracing.SpanElection, tracing.SpanVote, tracing.SpanVoteResponse}},
	}
	shots := os.Getenv(envShots)
	if shots == "" {
		shots = t.ArtifactDir()
	}
	for _, pg := range pages {
		b.check(j.QueryURL()+"/trace/"+pg.trace.TraceID, pg, shots)
	}
}

// rendered is what the page shows once every span row is drawn.
const rendered = `(() => {
	const t = document.body.innerText;
	return t.includes("Total Spans") && document.querySelectorAll(".span-row").length >= %d;
})()`

// openDetails clicks every span row open (its tags, process and any
// warnings), and reports how many are open.
const openDetails = `(() => {
	for (const v of document.querySelectorAll(".span-row .span-view")) v.click();
	return document.querySelectorAll(".span-row").length;
})()`

// detailsOpen: the details of at least %d spans are open (each shows its
// span id).
const detailsOpen = `document.querySelectorAll(".SpanDetail--debugInfo").length >= %d`

// openWarnings opens every span's warnings, and reports how many spans
// have some.
const openWarnings = `(() => {
	const w = document.querySelectorAll(".AccordianWarnings--header");
	for (const h of w) h.click();
	return w.length;
})()`

// check opens the trace page url in a tab and fails t with what it lacks.
func (b *browser) check(url string, pg page, shots string) {
	t := b.t
	ctx, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	ctx, cancelTime := context.WithTimeout(ctx, 30*time.Second)
	defer cancelTime()
	rows := min(len(pg.trace.Spans), 30) // rows below the window are not drawn
	var problems []string
	err := chromedp.Do(ctx, chromedp.Navigate(url))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(rendered, rows), chromedp.WithPollingTimeout(20*time.Second)))
	}
	if err != nil {
		problems = append(problems, fmt.Sprintf("the trace did not render %d span rows: %v", rows, err))
	}
	timeline, _ := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	text = strings.Join(strings.Fields(text), " ")
	services := map[string]bool{}
	for _, p := range pg.trace.Processes {
		services[p.ServiceName] = true
	}
	// The header reads "Services 3", with no space in its text. The page
	// shows the trace as Jaeger holds it when the page loads, which can be
	// more than was fetched before (a span of a third process, such as a
	// late vote response in the transfer's election, still on its way from
	// that process's exporter): at least the services fetched.
	if m := servicesHeader.FindStringSubmatch(strings.ReplaceAll(text, " ", "")); m == nil {
		problems = append(problems, "the header does not say how many services")
	} else if n, _ := strconv.Atoi(m[1]); n < len(services) {
		problems = append(problems, fmt.Sprintf("the header says %d services, want at least %d", n, len(services)))
	}
	for _, id := range pg.services {
		if !strings.Contains(text, serviceOf(id)) {
			problems = append(problems, fmt.Sprintf("service %s is not on the page", serviceOf(id)))
		}
	}
	for _, s := range pg.spans {
		if !strings.Contains(text, s) {
			problems = append(problems, fmt.Sprintf("span %s is not on the page", s))
		}
	}
	// Open every span's details: Jaeger lists a span's warnings there.
	details := ""
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](openDetails)); err != nil {
		problems = append(problems, fmt.Sprintf("opening the span details: %v", err))
	} else if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(detailsOpen, rows), chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		problems = append(problems, fmt.Sprintf("the details of %d spans did not open: %v", rows, err))
	} else {
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](openWarnings))
		details, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if strings.Contains(strings.ToLower(details), "clock skew") {
			problems = append(problems, `a span shows a "clock skew" warning`)
		}
		if n > 0 {
			problems = append(problems, fmt.Sprintf("%d spans show warnings", n))
		}
	}
	for _, pr := range problems {
		t.Errorf("%s page (%s): %s", pg.name, url, pr)
	}
	if len(problems) == 0 && !*screenshots {
		return
	}
	save := func(suffix string, png []byte) {
		path, _ := filepath.Abs(filepath.Join(shots, "jaeger-"+pg.name+suffix+".png"))
		if len(png) == 0 {
			t.Errorf("%s: no screenshot taken for %s", pg.name, path)
			return
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Errorf("%s: %v", pg.name, err)
			return
		}
		t.Logf("%s: %s saved as %s", pg.name, url, path)
	}
	save("", timeline)
	if len(problems) > 0 {
		shot, _ := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		save("-details", shot)
		t.Logf("%s page text:\n%s\nwith details opened:\n%s", pg.name, text, details)
	}
}
