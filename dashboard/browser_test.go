package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// browser starts Debian's chromium headless with a fresh profile and
// returns a chromedp context for one tab.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	exe := testutil.LookTool(t, "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	// Start the browser now, so that a start failure reads as one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// js evaluates expr in the page; it fails the test on a browser error.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pageNumber reads an element's text as a number ("1,234" -> 1234; "–"
// is an error).
func pageNumber(t *testing.T, ctx context.Context, sel string) (int64, error) {
	s := js[string](t, ctx, fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel))
	n, err := strconv.ParseInt(strings.NewReplacer(",", "", " ", "", "\u202f", "", ".", "").Replace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s shows %q", sel, s)
	}
	return n, nil
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// The visible window, as a person sees it (windows are sized for it).
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	noPageErrors(t, ctx)
	dir := filepath.Join(testutil.RepoRoot(t), "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d KiB)", p, len(png)>>10)
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// noPageErrors fails the test if the page has thrown (the page records
// uncaught errors in window.kaitenErrors).
func noPageErrors(t *testing.T, ctx context.Context) {
	t.Helper()
	if errs := js[[]string](t, ctx, `window.kaitenErrors || ["kaitenErrors missing"]`); len(errs) > 0 {
		t.Fatalf("the page threw: %v", errs)
	}
}

func waitLive(t *testing.T, ctx context.Context) {
	t.Helper()
	noPageErrors(t, ctx)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if js[string](t, ctx, `document.body.dataset.live||""`) != "1" {
			return fmt.Errorf("page not live: %s", js[string](t, ctx, `document.getElementById("conn").textContent`))
		}
		return nil
	})
}

// storeMatches checks that the page's headline numbers equal the API's.
func storeMatches(t *testing.T, ctx context.Context, api func() (StoreView, error)) error {
	v, err := api()
	if err != nil {
		return err
	}
	for sel, want := range map[string]int64{"#kpi-placed": v.Placed, "#kpi-taken": v.Taken, "#kpi-passed": v.Passed, "#kpi-onbelt": int64(v.OnBelt)} {
		got, err := pageNumber(t, ctx, sel)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s shows %d, the API says %d", sel, got, want)
		}
	}
	// The make-next card: what needs making, then what runs out soonest.
	var want []string
	seen := map[string]bool{}
	for i, ts := range v.MakeNext {
		if i < 8 {
			want = append(want, ts.PlateType)
			seen[ts.PlateType] = true
		}
	}
	for _, ts := range v.RunningLow {
		if len(want) < 6 && !seen[ts.PlateType] {
			want = append(want, ts.PlateType)
		}
	}
	shown := js[[]string](t, ctx, `[...document.querySelectorAll("#make-next li")].map(li => li.dataset.type)`)
	if strings.Join(shown, ",") != strings.Join(want, ",") {
		return fmt.Errorf("make-next shows %v, the API says %v", shown, want)
	}
	lanes := js[int](t, ctx, `document.querySelectorAll("#lanes .lane").length`)
	if lanes != len(v.Lanes) {
		return fmt.Errorf("%d lanes shown, the API has %d", lanes, len(v.Lanes))
	}
	return nil
}

// TestBrowserInProcess drives the page in headless Chromium against a
// dashboard on a real store whose records the test writes, so the numbers
// are known: the page goes live, shows what the API reports, follows new
// records, reconnects by itself after its connection is dropped, and each
// view renders (screenshots in test-artifacts/).
func TestBrowserInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a headless Chromium: make test runs it")
	}
	st := openStore(t)
	r := startRig(t, st, Config{PushInterval: durationOf(200 * time.Millisecond)})
	r.board.Set("mqtt", func() any { return map[string]any{"connected": true, "broker": "embedded", "received": 1234} })
	r.board.Set("sync", func() any {
		return []map[string]any{{"name": "plates-archive", "online": true, "backlog_records": 0, "freshness_s": 1.5}}
	})
	types := []string{"salmon", "tuna", "ebi", "tamago", "unagi", "inari", "kappa-maki", "ikura"}
	for i, typ := range types {
		putPlates(t, st, strconv.Itoa(1+i%4), typ, 4+i, (3*i)%7, 2+i)
	}
	if _, err := st.Put(context.Background(), "plates", stream.Entry{PartitionKey: "demo-store/4", Data: []byte(`{"sensor":"lane4-ir2","lane":"4","ok":false,"ts":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t, 1280, 1300)
	navigate(t, ctx, r.http.URL+"/#store")
	waitLive(t, ctx)
	testutil.WaitFor(t, 20*time.Second, func() error { return storeMatches(t, ctx, r.storeView) })
	if n := js[int](t, ctx, `document.querySelectorAll("#chart-passes canvas").length`); n == 0 {
		t.Fatal("no chart canvas on the store view")
	}

	// The live SQL card: the demo query's newest window from plate-stats,
	// a grid of plate type by lane with totals, and the lag from the board.
	const q = "plates_taken_per_minute"
	r.board.Set(status.AnalyticsEntry, func() any {
		return status.Analytics{Queries: []status.Query{{Name: q, SQL: demoSQL, Source: "plates", Output: "plate-stats",
			Window: "tumbling 1m0s", State: "running", BehindMs: 4000}}}
	})
	w1 := time.Now().Truncate(time.Minute).Add(-2 * time.Minute)
	taken := map[[2]string]int{}
	var stats []stream.Record
	for i, typ := range types {
		for lane := 1; lane <= 6; lane++ { // the demo's six lanes
			if n := (i*lane + lane) % 7; n > 0 {
				taken[[2]string{typ, strconv.Itoa(lane)}] = n
				stats = append(stats, statRec(q, w1, strconv.Itoa(lane), typ, n))
			}
		}
	}
	putStats(t, st, "plate-stats", statRec(q, w1.Add(-time.Minute), "1", "salmon", 77)) // an older window
	putStats(t, st, "plate-stats", stats...)
	wantCard := func(w time.Time, taken map[[2]string]int) error {
		sel := fmt.Sprintf(`#sql-results .sqlq[data-query=%q]`, q)
		if js[int](t, ctx, `document.querySelectorAll(`+strconv.Quote(sel)+`).length`) != 1 {
			return fmt.Errorf("no card section for %s: %q", q, js[string](t, ctx, `document.getElementById("sql-results").textContent`))
		}
		win := w.Local().Format("15:04") + "–" + w.Add(time.Minute).Local().Format("15:04")
		if got := js[string](t, ctx, `(document.querySelector(`+strconv.Quote(sel+" .win")+`)||{}).textContent||""`); got != win {
			return fmt.Errorf("window shows %q, want %q", got, win)
		}
		if got := js[string](t, ctx, `(document.querySelector(`+strconv.Quote(sel+" .lag")+`)||{}).textContent||""`); got != "lag 4 s" {
			return fmt.Errorf("lag shows %q", got)
		}
		cells := js[map[string]string](t, ctx, `Object.fromEntries([...document.querySelectorAll(`+strconv.Quote(sel+" td[data-row][data-col]")+
			`)].map(td => [td.dataset.row + "/" + td.dataset.col, td.textContent]))`)
		total, rows, cols := 0, map[string]int{}, map[string]int{}
		for k, n := range taken {
			total += n
			rows[k[0]] += n
			cols[k[1]] += n
			if got := cells[k[0]+"/"+k[1]]; got != strconv.Itoa(n) {
				return fmt.Errorf("%s in lane %s shows %q, want %d", k[0], k[1], got, n)
			}
		}
		shown := 0
		for _, v := range cells {
			if v != "·" {
				shown++
			}
		}
		if shown != len(taken) {
			return fmt.Errorf("%d cells show numbers, want %d: %v", shown, len(taken), cells)
		}
		for typ, n := range rows {
			if got, err := pageNumber(t, ctx, sel+fmt.Sprintf(` td[data-row-total=%q]`, typ)); err != nil || got != int64(n) {
				return fmt.Errorf("row total %s: %d (%v), want %d", typ, got, err, n)
			}
		}
		for lane, n := range cols {
			if got, err := pageNumber(t, ctx, sel+fmt.Sprintf(` td[data-col-total=%q]`, lane)); err != nil || got != int64(n) {
				return fmt.Errorf("lane total %s: %d (%v), want %d", lane, got, err, n)
			}
		}
		if got, err := pageNumber(t, ctx, sel+" td[data-total]"); err != nil || got != int64(total) {
			return fmt.Errorf("total %d (%v), want %d", got, err, total)
		}
		return nil
	}
	testutil.WaitFor(t, 20*time.Second, func() error { return wantCard(w1, taken) })
	// The next window replaces it, pushed without a reload.
	w2 := w1.Add(time.Minute)
	putStats(t, st, "plate-stats", statRec(q, w2, "2", "tuna", 3), statRec(q, w2, "3", "ebi", 1))
	testutil.WaitFor(t, 20*time.Second, func() error {
		return wantCard(w2, map[[2]string]int{{"tuna", "2"}: 3, {"ebi", "3"}: 1})
	})
	// Results of an older window (a replayed copy) change nothing; the
	// window after is shown whole.
	putStats(t, st, "plate-stats", stats...)
	w3 := w2.Add(time.Minute)
	stats = stats[:0]
	for k, n := range taken {
		stats = append(stats, statRec(q, w3, k[1], k[0], n))
	}
	putStats(t, st, "plate-stats", stats...)
	testutil.WaitFor(t, 20*time.Second, func() error { return wantCard(w3, taken) })

	// Live: new records show up without a reload.
	before, _ := pageNumber(t, ctx, "#kpi-placed")
	putPlates(t, st, "2", "tuna", 5, 0, 0)
	testutil.WaitFor(t, 20*time.Second, func() error {
		got, err := pageNumber(t, ctx, "#kpi-placed")
		if err != nil {
			return err
		}
		if got != before+5 {
			return fmt.Errorf("placed shows %d, want %d", got, before+5)
		}
		return storeMatches(t, ctx, r.storeView)
	})

	// Reconnect: drop every websocket client; the page comes back by itself
	// and shows records written while it was away.
	if n := r.srv.hub.DropAll(); n != 1 {
		t.Fatalf("dropped %d clients, want the page's 1", n)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if js[string](t, ctx, `document.body.dataset.live`) != "0" {
			return fmt.Errorf("page did not notice the dropped connection")
		}
		return nil
	})
	putPlates(t, st, "3", "ikura", 3, 0, 0)
	waitLive(t, ctx)
	testutil.WaitFor(t, 20*time.Second, func() error {
		got, err := pageNumber(t, ctx, "#kpi-placed")
		if err != nil {
			return err
		}
		if got != before+8 {
			return fmt.Errorf("placed shows %d after reconnecting, want %d", got, before+8)
		}
		return storeMatches(t, ctx, r.storeView)
	})
	screenshot(t, ctx, "dashboard-store-inprocess")

	// On a phone the grid fits the screen (no sideways scrolling) and the
	// numbers stay large.
	phone := browser(t, 390, 844)
	navigate(t, phone, r.http.URL+"/#store")
	waitLive(t, phone)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if n := js[int](t, phone, `document.querySelectorAll("#sql-results td[data-row][data-col]").length`); n == 0 {
			return fmt.Errorf("no results grid on the phone")
		}
		return nil
	})
	if over := js[int](t, phone, `(() => { const t = document.querySelector("#sql-results table"); const c = document.getElementById("sql-card");
		return Math.max(document.documentElement.scrollWidth - innerWidth, t.getBoundingClientRect().right - c.getBoundingClientRect().right) })()`); over > 0 {
		t.Errorf("the results grid is %d px wider than the phone's screen", over)
	}
	if px := js[float64](t, phone, `parseFloat(getComputedStyle(document.querySelector("#sql-results td[data-row]")).fontSize)`); px < 18 {
		t.Errorf("result numbers are %.0f px on a phone", px)
	}
	js[bool](t, phone, `(document.getElementById("sql-card").scrollIntoView(), true)`)
	screenshot(t, phone, "dashboard-store-phone-inprocess")

	// Gateway view: streams, components from the status board, dead letters.
	if _, err := st.Put(context.Background(), "deadletter", stream.Entry{PartitionKey: "mqtt", Data: []byte(`{"source":"mqtt","topic":"store/demo-store/lane/9/plate","reason":"payload is not JSON","data_b64":"eA==","ts":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	navigate(t, ctx, r.http.URL+"/#gateway")
	waitLive(t, ctx)
	testutil.WaitFor(t, 20*time.Second, func() error {
		var v GatewayView
		if err := r.getJSON("/api/dashboard/gateway", &v); err != nil {
			return err
		}
		rows := js[[]string](t, ctx, `[...document.querySelectorAll("#streams-table tbody tr")].map(r => r.dataset.stream)`)
		if len(rows) != len(v.Streams) {
			return fmt.Errorf("streams shown %v, API has %d", rows, len(v.Streams))
		}
		dead, err := pageNumber(t, ctx, "#kpi-dead")
		if err != nil {
			return err
		}
		if dead != int64(v.DeadLetters.Total) || dead != 1 {
			return fmt.Errorf("dead letters shown %d, API %d", dead, v.DeadLetters.Total)
		}
		if n := js[int](t, ctx, `document.querySelectorAll("#chart-rate canvas").length`); n == 0 {
			return fmt.Errorf("no rate chart")
		}
		comps := js[[]string](t, ctx, `[...document.querySelectorAll("#components [data-component]")].map(c => c.dataset.component)`)
		if strings.Join(comps, ",") != "sync,mqtt,analytics" {
			return fmt.Errorf("components shown %v", comps)
		}
		if txt := js[string](t, ctx, `document.querySelector("[data-component=sync]").textContent`); !strings.Contains(txt, "plates-archive") || !strings.Contains(txt, "online") {
			return fmt.Errorf("sync card reads %q", txt)
		}
		return nil
	})
	screenshot(t, ctx, "dashboard-gateway-inprocess")

	// Tail: pick the gpio stream and watch a record arrive.
	navigate(t, ctx, r.http.URL+"/#tail")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := js[int](t, ctx, `document.querySelectorAll("#tail-stream option").length`); n != 4 { // plates, deadletter, gpio, plate-stats
			return fmt.Errorf("%d streams in the picker", n)
		}
		return nil
	})
	js[bool](t, ctx, `(() => { const s = document.getElementById("tail-stream"); s.value = "gpio"; s.dispatchEvent(new Event("change")); return true })()`)
	marker := fmt.Sprintf("beam-%d", time.Now().UnixNano())
	testutil.WaitFor(t, 20*time.Second, func() error {
		if _, err := st.Put(context.Background(), "gpio", stream.Entry{PartitionKey: "lane1-beam",
			Data: []byte(`{"pin":"GPIO17","sensor":"` + marker + `","lane":"1","kind":"pass","count":42}`)}); err != nil {
			return err
		}
		if txt := js[string](t, ctx, `document.querySelector("#tail-table tbody").textContent`); !strings.Contains(txt, marker) {
			return fmt.Errorf("tail does not show %s yet", marker)
		}
		return nil
	})
	screenshot(t, ctx, "dashboard-tail-inprocess")
}

// TestBrowserDaemon runs the real kaiten (with its conveyor simulator, as
// `make run` does) and checks in Chromium that the store comes alive on
// the dashboard, that the numbers match the API, that the demo query's
// first window shows on the live SQL card, and that the gateway and tail
// views render. Screenshots go to test-artifacts/.
func TestBrowserDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon and a headless Chromium: make test runs it")
	}
	// KAITEN_DASHBOARD_URL points the test at a gateway that is already
	// running (e.g. `make run` after a while, for README screenshots).
	base := os.Getenv("KAITEN_DASHBOARD_URL")
	if base == "" {
		// The simulator's traffic follows the hour of the day; a busier
		// belt than the default makes the test quick at any hour.
		dir := t.TempDir()
		cfg := filepath.Join(dir, "kaiten.yaml")
		if err := os.WriteFile(cfg, []byte("sim:\n  rate: 5\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		d := testutil.StartDaemon(t, filepath.Join(dir, "data"), "--config", cfg)
		base = "http://" + d.HTTPAddr
	}
	api := func() (StoreView, error) {
		var v StoreView
		resp, err := http.Get(base + "/api/dashboard/store")
		if err != nil {
			return v, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return v, fmt.Errorf("store api: %s", resp.Status)
		}
		return v, json.NewDecoder(resp.Body).Decode(&v)
	}
	// Wait for the simulator's first plates.
	testutil.WaitFor(t, 60*time.Second, func() error {
		v, err := api()
		if err != nil {
			return err
		}
		if v.Placed == 0 || len(v.Lanes) == 0 {
			return fmt.Errorf("no plates yet (records %d)", v.Records)
		}
		return nil
	})
	ctx := browser(t, 1280, 1300)
	navigate(t, ctx, base+"/#store")
	waitLive(t, ctx)
	// The numbers change every second: poll until the page and the API
	// agree on one snapshot.
	testutil.WaitFor(t, 30*time.Second, func() error { return storeMatches(t, ctx, api) })
	first, _ := pageNumber(t, ctx, "#kpi-placed")
	testutil.WaitFor(t, 60*time.Second, func() error {
		n, err := pageNumber(t, ctx, "#kpi-placed")
		if err != nil {
			return err
		}
		if n <= first {
			return fmt.Errorf("placed still %d: no live update", n)
		}
		return nil
	})
	// The real continuous query: once its first window closes (within
	// about a minute of the start, or the next one if nothing was taken),
	// the live SQL card shows the same window and total as the API.
	testutil.WaitFor(t, 150*time.Second, func() error {
		v, err := api()
		if err != nil {
			return err
		}
		var d *QueryResult
		for i := range v.Analytics {
			if v.Analytics[i].Query == "plates_taken_per_minute" {
				d = &v.Analytics[i]
			}
		}
		if d == nil || d.WindowEnd == nil || d.Pivot == nil || d.Pivot.Total == nil {
			return fmt.Errorf("no window of the demo query yet: %+v", v.Analytics)
		}
		sel := `#sql-results .sqlq[data-query=plates_taken_per_minute]`
		win := d.WindowStart.Local().Format("15:04") + "–" + d.WindowEnd.Local().Format("15:04")
		if got := js[string](t, ctx, `(document.querySelector("`+sel+` .win")||{}).textContent||""`); got != win {
			return fmt.Errorf("card shows window %q, the API %q", got, win)
		}
		if got, err := pageNumber(t, ctx, sel+" td[data-total]"); err != nil || got != int64(*d.Pivot.Total) {
			return fmt.Errorf("card total %d (%v), the API %v", got, err, *d.Pivot.Total)
		}
		if n := js[int](t, ctx, `document.querySelectorAll("`+sel+` td[data-row][data-col]:not(.none)").length`); n != len(d.Rows) {
			return fmt.Errorf("card shows %d results, the API %d", n, len(d.Rows))
		}
		return nil
	})
	screenshot(t, ctx, "dashboard-store")
	navigate(t, ctx, base+"/#gateway")
	waitLive(t, ctx)
	testutil.WaitFor(t, 20*time.Second, func() error {
		if rows := js[int](t, ctx, `document.querySelectorAll("#streams-table tbody tr").length`); rows == 0 {
			return fmt.Errorf("no streams shown")
		}
		if comps := js[int](t, ctx, `document.querySelectorAll("#components [data-component]").length`); comps == 0 {
			return fmt.Errorf("no component status shown")
		}
		if n := js[int](t, ctx, `document.querySelectorAll("#chart-rate canvas").length`); n == 0 {
			return fmt.Errorf("no rate chart")
		}
		return nil
	})
	screenshot(t, ctx, "dashboard-gateway")
	navigate(t, ctx, base+"/#tail")
	testutil.WaitFor(t, 60*time.Second, func() error {
		if n := js[int](t, ctx, `document.querySelectorAll("#tail-table tbody tr").length`); n == 0 {
			return fmt.Errorf("no records in the tail yet")
		}
		return nil
	})
	screenshot(t, ctx, "dashboard-tail")
	// A phone-sized window gets the same live store view.
	phone := browser(t, 390, 844)
	navigate(t, phone, base+"/#store")
	waitLive(t, phone)
	testutil.WaitFor(t, 30*time.Second, func() error { return storeMatches(t, phone, api) })
	screenshot(t, phone, "dashboard-store-phone")
}

// TestBrowserToken: with a token configured, a fresh browser gets the
// token form and no data; the token in the URL once opens the live view,
// and the page keeps it (a reload without it stays live).
func TestBrowserToken(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a headless Chromium: make test runs it")
	}
	st := openStore(t)
	const tok = "kitchen-tablet-7"
	r := startRig(t, st, Config{Token: tok})
	putPlates(t, st, "1", "salmon", 3, 1, 2)
	ctx := browser(t, 1024, 768)
	navigate(t, ctx, r.http.URL+"/#store")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if js[bool](t, ctx, `document.getElementById("login").hidden`) {
			return fmt.Errorf("no token form")
		}
		return nil
	})
	if live := js[string](t, ctx, `document.body.dataset.live||""`); live == "1" {
		t.Fatal("page live without a token")
	}
	navigate(t, ctx, r.http.URL+"/?token="+tok+"#store")
	waitLive(t, ctx)
	testutil.WaitFor(t, 10*time.Second, func() error {
		n, err := pageNumber(t, ctx, "#kpi-placed")
		if err != nil {
			return err
		}
		if n != 3 {
			return fmt.Errorf("placed shows %d, want 3", n)
		}
		return nil
	})
	if u := js[string](t, ctx, `location.href`); strings.Contains(u, tok) {
		t.Fatalf("token left in the address bar: %s", u)
	}
	navigate(t, ctx, r.http.URL+"/#gateway")
	waitLive(t, ctx)
}
