package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/sync/internal/pgtest"
)

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
	cfg := writeConfig(t, t.TempDir(), baseStreams+fmt.Sprintf(`
sync:
  - name: e2e-postgres
    stream: e2e
    buffer: {interval: 1s}
    retry: {initial: 100ms, max: 1s}
    postgres:
      connection: {host: %s, port: %d, database: %s, user: %s, password_file: %s, sslmode: disable}
      table: plates
      timeout: 2s
      columns:
        - {name: line, from: $data, type: string}
        - {name: k, from: k, type: string}
        - {name: seq, from: $sequence_number, type: string}
        - {name: arrived, from: $arrival_time, type: timestamp}
`, srv.Host, srv.Port, db, pgtest.User, srv.PasswordFile))
	t.Cleanup(srv.Resume)
	f, gw := outage(t, cfg, "e2e-postgres", srv.Pause, srv.Resume)
	// One unit: every row in insertion order. Within a key the rows must
	// follow put order, and check counts any row held twice.
	c := srv.Connect(t, db)
	rows, err := c.Query(context.Background(), "SELECT line FROM plates ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		all = append(all, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	check(t, f, [][]string{all}, false)
	var batches int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM kaiten_batches WHERE delivery_stream = 'e2e-postgres'").Scan(&batches); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows in %d ledgered batches", len(all), batches)
	if err := gw.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(gw.Log(), pgtest.Password) {
		t.Fatal("the gateway logged the PostgreSQL password")
	}
}
