package pgsink_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/internal/pgtest"
	"github.com/kaiten-edge/kaiten/sync/pgsink"
)

// TestOutage freezes PostgreSQL (SIGSTOP to the postmaster and every
// backend, connections hang as on a dead link) while records keep coming,
// then thaws it (SIGCONT): batches whose commit was in flight when the
// server froze are found in the ledger on retry, so every record is in
// the table exactly once, each shard's rows in order.
func TestOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own PostgreSQL server: not in -short")
	}
	srv := pgtest.Start(t) // its own: the shared one must not freeze
	db := srv.CreateDatabase(t)
	table := newTable(t, srv, db, "id bigserial, n integer, pk text, seq text")
	cols := []pgsink.Column{
		{Name: "n", Type: pgsink.TypeInt},
		{Name: "pk", From: pgsink.FromPartitionKey, Type: pgsink.TypeString},
		{Name: "seq", From: pgsink.FromSequenceNumber, Type: pgsink.TypeString},
	}
	cfg := pgsink.Config{
		Connection: pgsink.Connection{Host: srv.Host, Port: srv.Port, Database: db, User: pgtest.User,
			PasswordFile: srv.PasswordFile, SSLMode: "disable"},
		Table: table, Columns: cols, Timeout: gconfig.Duration{Duration: time.Second},
	}
	built, err := cfg.Build(configEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	s := built.(*pgsink.Sink)
	t.Cleanup(s.Close)
	r := newRig(t, s, 2)

	var mu sync.Mutex
	n := 0
	feed := func(rounds int) {
		for range rounds {
			mu.Lock()
			var data []string
			for range 20 {
				data = append(data, fmt.Sprintf(`{"n":%d}`, n))
				n++
			}
			mu.Unlock()
			r.put(t, data...)
		}
	}
	feed(10)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if st := r.ds.Status(); st.DeliveredRecords == 0 {
			return fmt.Errorf("nothing delivered yet: %+v", st)
		}
		return nil
	})
	srv.Pause()
	t.Cleanup(srv.Resume)
	feed(10)
	testutil.WaitFor(t, 30*time.Second, func() error {
		feed(1)
		if st := r.ds.Status(); st.Online || st.BacklogRecords == 0 {
			return fmt.Errorf("want the delivery stream offline with a backlog: %+v", st)
		}
		return nil
	})
	feed(10)
	srv.Resume()
	feed(10)
	r.caughtUp(t, 60*time.Second)

	rows := query(t, srv, db, fmt.Sprintf("SELECT n::text FROM %s ORDER BY id", table))
	count := map[string]int{}
	for _, v := range rows {
		count[v]++
	}
	for i := range n {
		if c := count[fmt.Sprint(i)]; c != 1 {
			t.Fatalf("record %d is in the table %d times, want once (%d rows for %d records)", i, c, len(rows), n)
		}
	}
	if len(rows) != n {
		t.Fatalf("%d rows for %d records", len(rows), n)
	}
	// Within a shard (one partition key's records live in one), rows keep
	// the stream's order.
	byPK := query(t, srv, db, fmt.Sprintf("SELECT pk || ' ' || n FROM %s ORDER BY id", table))
	last := map[string]int{}
	for _, v := range byPK {
		var pk string
		var i int
		fmt.Sscanf(v, "%s %d", &pk, &i)
		if prev, ok := last[pk]; ok && i <= prev {
			t.Fatalf("key %s: record %d after %d", pk, i, prev)
		}
		last[pk] = i
	}
	t.Logf("%d records, each once; status %+v", n, r.ds.Status())
}
