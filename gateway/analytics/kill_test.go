package analytics

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const killConfig = `
streams:
  - {name: plates, shards: 4}
  - {name: gpio, shards: 1}
  - {name: deadletter, shards: 1}
  - {name: plate-stats, shards: 1}
  - {name: events, shards: 2}
  - {name: results, shards: 1}
analytics:
  save_interval: 20ms
  queries:
    - name: kt
      sql: "SELECT lane, COUNT(*) AS n, SUM(v) AS s FROM events WHERE kind = 'taken' GROUP BY lane, TUMBLING(INTERVAL '100' MILLISECOND)"
      output: results
`

// putRecords writes records through the gateway's Kinesis API (as any
// producer would) and fails the test unless all were stored.
func putRecords(t *testing.T, addr string, recs []string, keys []string) {
	t.Helper()
	type entry struct{ Data, PartitionKey string }
	body := struct {
		StreamName string
		Records    []entry
	}{StreamName: "events"}
	for i, r := range recs {
		body.Records = append(body.Records, entry{base64.StdEncoding.EncodeToString([]byte(r)), keys[i]})
	}
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+addr+"/", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ FailedRecordCount int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.FailedRecordCount != 0 {
		t.Fatalf("PutRecords: %d %v %+v", resp.StatusCode, err, out)
	}
}

func queryStatus(addr, name string) (status.Query, error) {
	var s status.Query
	resp, err := http.Get("http://" + addr + "/api/queries/" + name)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("status %d", resp.StatusCode)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// TestKillRestartExactlyOnce runs the real daemon, writes through its
// Kinesis API while a 100 ms tumbling query runs, kills it with SIGKILL at
// random points several times, and finally compares the results stream
// with a hand-written aggregation of the source stream: every window and
// group must be there exactly once with the right values.
func TestKillRestartExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the kaiten daemon: make test runs it")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kaiten.yaml")
	if err := os.WriteFile(cfg, []byte(killConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	args := []string{"--config", cfg, "--no-sim", "--mqtt-addr", testutil.FreeAddr(t)}
	rng := rand.New(rand.NewPCG(9, 9))
	seq := 0
	batch := func(addr string) {
		var recs, keys []string
		for i := 0; i < 20; i++ {
			seq++
			lane := fmt.Sprint(seq%3 + 1)
			kind := "taken"
			if seq%5 == 0 {
				kind = "passed"
			}
			recs = append(recs, fmt.Sprintf(`{"lane":%q,"kind":%q,"v":%d,"n":%d}`, lane, kind, seq%11, seq))
			keys = append(keys, "lane-"+lane)
		}
		putRecords(t, addr, recs, keys)
	}
	const rounds = 4
	for round := 0; round < rounds; round++ {
		d := testutil.StartDaemon(t, data, args...)
		// Write until the query has emitted some windows in this run, then a
		// random number of batches more, and kill it in the middle of that.
		testutil.WaitFor(t, 30*time.Second, func() error {
			batch(d.HTTPAddr)
			s, err := queryStatus(d.HTTPAddr, "kt")
			if err != nil {
				return err
			}
			if s.Out < 8 {
				return fmt.Errorf("%d results so far", s.Out)
			}
			return nil
		})
		for n := rng.IntN(40); n > 0; n-- {
			batch(d.HTTPAddr)
		}
		if round == rounds-1 {
			// Last run: stop writing, let the idle watermark close the rest.
			testutil.WaitFor(t, 30*time.Second, func() error {
				s, err := queryStatus(d.HTTPAddr, "kt")
				if err != nil {
					return err
				}
				if s.OpenWindows != 0 || s.State != "running" {
					return fmt.Errorf("%d windows open, state %s", s.OpenWindows, s.State)
				}
				return nil
			})
			if err := d.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			break
		}
		d.Kill()
	}

	st := openStore(t, filepath.Join(data, "store"), nil)
	src := readAll(t, st, "events")
	if len(src) != seq {
		t.Fatalf("%d records in events, %d were acknowledged", len(src), seq)
	}
	// The hand-written oracle: 100 ms tumbling windows of arrival time.
	type key struct {
		start int64
		lane  string
	}
	n, s := map[key]int{}, map[key]int{}
	for _, r := range src {
		var rec struct {
			Lane, Kind string
			V          int
		}
		if err := json.Unmarshal(r.Data, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Kind != "taken" {
			continue
		}
		ms := r.ArrivalTime.UnixMilli()
		k := key{ms - ms%100, rec.Lane}
		n[k]++
		s[k] += rec.V
	}
	var want []string
	for k := range n {
		want = append(want, fmt.Sprintf(`{"query":"kt","window_start":%q,"window_end":%q,"lane":%q,"n":%d,"s":%d}`,
			formatMillis(k.start), formatMillis(k.start+100), k.lane, n[k], s[k]))
	}
	sort.Strings(want)
	got := datas(readAll(t, st, "results"))
	if !slices.Equal(got, want) {
		gotSet := map[string]int{}
		for _, g := range got {
			gotSet[g]++
		}
		var diff []string
		for _, w := range want {
			if gotSet[w] == 0 {
				diff = append(diff, "missing "+w)
			}
			gotSet[w]--
		}
		for g, c := range gotSet {
			if c > 0 {
				diff = append(diff, fmt.Sprintf("extra(%d) %s", c, g))
			}
		}
		sort.Strings(diff)
		t.Fatalf("%d results, want %d:\n%s", len(got), len(want), strings.Join(diff, "\n"))
	}
	if dl := readAll(t, st, "deadletter"); len(dl) != 0 {
		t.Errorf("%d records went to the late output; with arrival time none is late", len(dl))
	}
	t.Logf("%d source records, %d windows, %d kills", len(src), len(want), rounds-1)
}
