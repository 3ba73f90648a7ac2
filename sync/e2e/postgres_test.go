package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/internal/pgtest"
)

// pgConfig is a gateway config delivering the e2e stream to table.
func pgConfig(t *testing.T, srv *pgtest.Server, db, table string) string {
	return deliveryConfig(t, "e2e-postgres", fmt.Sprintf(`    postgres:
      connection: {host: %s, port: %d, database: %s, user: %s, password_file: %s, sslmode: disable}
      table: %s
      timeout: 2s
      columns:
        - {name: line, from: $data, type: string}
        - {name: k, from: k, type: string}
        - {name: seq, from: $sequence_number, type: string}
        - {name: arrived, from: $arrival_time, type: timestamp}
`, srv.Host, srv.Port, db, pgtest.User, srv.PasswordFile, table))
}

// TestPostgresTableAppearsLater starts the gateway before its table
// exists: /healthz and the status board say degraded, naming the table,
// while the records wait in the stream; once the table is created they are
// delivered and the gateway is healthy again, without a restart.
func TestPostgresTableAppearsLater(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon and PostgreSQL: make test runs it")
	}
	srv := pgtest.Start(t)
	db := srv.CreateDatabase(t)
	gw := startGateway(t, t.TempDir(), pgConfig(t, srv, db, "late_plates"))
	f := newFeeder()
	if err := f.put(context.Background(), kinesisClient(gw.HTTPAddr), "e2e", 10); err != nil {
		t.Fatal(err)
	}
	health := func() (string, error) {
		resp, err := http.Get("http://" + gw.HTTPAddr + "/healthz")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("/healthz: %s %s", resp.Status, b)
		}
		return string(b), err
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		h, err := health()
		if err != nil {
			return err
		}
		if !strings.Contains(h, `"status":"degraded"`) || !strings.Contains(h, "e2e-postgres") || !strings.Contains(h, "late_plates does not exist") {
			return fmt.Errorf("/healthz %s: want degraded naming the delivery stream and the table", h)
		}
		s, err := status(gw.HTTPAddr, "e2e-postgres")
		if err != nil {
			return err
		}
		if s.BacklogRecords != int64(f.count()) || s.DeliveredRecords != 0 {
			return fmt.Errorf("status %+v: want the %d records waiting", s, f.count())
		}
		return nil
	})
	srv.Exec(t, db, "CREATE TABLE late_plates (id bigserial, line text NOT NULL, k text, seq text, arrived timestamptz)")
	waitStatus(t, gw.HTTPAddr, "e2e-postgres", 30*time.Second, "after the table appeared", func(s syncStatus) bool {
		return s.Online && s.BacklogRecords == 0 && s.DeliveredRecords == int64(f.count())
	})
	if h, err := health(); err != nil || !strings.Contains(h, `"status":"ok"`) {
		t.Fatalf("/healthz %s %v after the table appeared", h, err)
	}
}

// TestOfflinePostgres is the offline scenario against a real PostgreSQL,
// frozen with SIGSTOP while the gateway is killed (SIGKILL) and restarted:
// the batch ledger makes every record land in the table exactly once, each
// key's rows in put order.
func TestOfflinePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon and PostgreSQL: make test runs it")
	}
	srv := pgtest.Start(t)
	db := srv.CreateDatabase(t)
	srv.Exec(t, db, "CREATE TABLE plates (id bigserial, line text NOT NULL, k text, seq text, arrived timestamptz)")
	cfg := pgConfig(t, srv, db, "plates")
	t.Cleanup(srv.Resume)
	f, gw := outage(t, cfg, "e2e-postgres", srv.Pause, srv.Resume)
	// One unit: every row in insertion order. Within a key the rows must
	// follow put order, and check counts any row held twice.
	all := srv.Strings(t, db, "SELECT line FROM plates ORDER BY id")
	check(t, f, [][]string{all}, false)
	batches := srv.Strings(t, db, "SELECT count(*)::text FROM kaiten_batches WHERE delivery_stream = 'e2e-postgres'")
	t.Logf("%d rows in %s ledgered batches", len(all), batches[0])
	if err := gw.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(gw.Log(), pgtest.Password) {
		t.Fatal("the gateway logged the PostgreSQL password")
	}
}
