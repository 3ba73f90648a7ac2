package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// TestDefaultRunDeliversLocally is `make run` with no config: the simulated
// store's plates reach <data dir>/delivered/ as gzip JSON lines, laid out
// like S3 keys, within a minute; the status board and /metrics show it.
func TestDefaultRunDeliversLocally(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	dataDir := t.TempDir()
	gw := testutil.StartDaemon(t, dataDir, "--mqtt-addr", testutil.FreeAddr(t))
	start := time.Now()
	keyRE := regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/\d{2}/plates-archive-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}\.gz$`)
	var first string
	testutil.WaitFor(t, 60*time.Second, func() error {
		root := filepath.Join(dataDir, "delivered")
		_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() && first == "" && strings.HasSuffix(p, ".gz") {
				first = p
			}
			return nil
		})
		if first == "" {
			return fmt.Errorf("no file under %s yet", root)
		}
		return nil
	})
	t.Logf("first delivered file after %s", time.Since(start).Round(time.Second))
	rel, _ := filepath.Rel(filepath.Join(dataDir, "delivered"), first)
	if !keyRE.MatchString(filepath.ToSlash(rel)) {
		t.Fatalf("file %q is not laid out like an S3 key", rel)
	}
	raw, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := sink.Decode(raw, sink.Gzip)
	if err != nil {
		t.Fatal(err)
	}
	plates := 0
	for _, l := range lines(plain) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if rec["store"] == "demo-store" && rec["plate_type"] != nil {
			plates++
		}
	}
	if plates == 0 {
		t.Fatalf("no plate event in %s", plain)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		s, err := status(gw.HTTPAddr, "plates-archive")
		if err != nil {
			return err
		}
		if !s.Online || s.DeliveredRecords == 0 {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	resp, err := http.Get("http://" + gw.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{
		`kaiten_firehose_delivery_records_total{delivery_stream="plates-archive",destination="local"}`,
		`kaiten_firehose_delivery_data_freshness_seconds{delivery_stream="plates-archive",destination="local"}`,
		`kaiten_firehose_backlog_records{delivery_stream="plates-archive",destination="local"}`,
		`kaiten_firehose_online{delivery_stream="plates-archive",destination="local"} 1`,
	} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if err := gw.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
