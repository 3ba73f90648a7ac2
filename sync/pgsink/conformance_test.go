package pgsink_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kaiten-edge/kaiten/sync/internal/pgtest"
	"github.com/kaiten-edge/kaiten/sync/pgsink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

var (
	serverOnce sync.Once
	shared     *pgtest.Server
	sharedDB   string
)

// server is one PostgreSQL for the package's tests that do not stop it;
// each test uses its own tables in one database.
func server(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a PostgreSQL server: not in -short")
	}
	serverOnce.Do(func() {
		shared = pgtest.Start(&packageTB{TB: t})
		sharedDB = shared.CreateDatabase(t)
	})
	if shared == nil {
		t.Fatal("the shared PostgreSQL did not start (see the first test's log)")
	}
	return shared, sharedDB
}

var tables struct {
	mu sync.Mutex
	n  int
}

// newTable creates a fresh table with the given column definitions and
// returns its name.
func newTable(t *testing.T, srv *pgtest.Server, db, defs string) string {
	t.Helper()
	tables.mu.Lock()
	tables.n++
	name := fmt.Sprintf("t%d", tables.n)
	tables.mu.Unlock()
	srv.Exec(t, db, fmt.Sprintf("CREATE TABLE %s (%s)", name, defs))
	return name
}

// newSink builds the destination through its config, as the gateway does,
// with the password read from the server's password file.
func newSink(t *testing.T, srv *pgtest.Server, db, table string, cols []pgsink.Column) *pgsink.Sink {
	t.Helper()
	cfg := pgsink.Config{
		Connection: pgsink.Connection{Host: srv.Host, Port: srv.Port, Database: db, User: pgtest.User,
			PasswordFile: srv.PasswordFile, SSLMode: "disable"},
		Table: table, Columns: cols, LedgerTable: table + "_ledger",
	}
	return newSinkFrom(t, cfg)
}

// newSinkFrom builds cfg as the gateway does, with a fresh data directory
// or the one given.
func newSinkFrom(t *testing.T, cfg pgsink.Config, dataDir ...string) *pgsink.Sink {
	t.Helper()
	env := configEnv(t)
	if len(dataDir) > 0 {
		env.DataDir = dataDir[0]
	}
	s, err := cfg.Build(env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.(*pgsink.Sink).Close)
	return s.(*pgsink.Sink)
}

// rowsOf returns a column of the table, in insertion order (the id
// column, bigserial).
func rowsOf(t testing.TB, srv *pgtest.Server, db, table, col string) []string {
	t.Helper()
	return query(t, srv, db, fmt.Sprintf("SELECT %s FROM %s ORDER BY id", col, table))
}

// query returns the first column of a query's rows as text.
func query(t testing.TB, srv *pgtest.Server, db, sql string) []string {
	t.Helper()
	return srv.Strings(t, db, sql)
}

// TestConformance runs the shared sink contract against a real
// PostgreSQL. The ledger is the identity: a batch is held once under its
// id whatever the retries. A batch is committed whole, so there is no
// partial failure to retry; a table whose check constraint refuses every
// row is refused for good, row by row, and the records go to the
// dead-letter stream (the destination has no error output of its own).
func TestConformance(t *testing.T) {
	srv, db := server(t)
	cols := []pgsink.Column{{Name: "data", From: pgsink.FromData, Type: pgsink.TypeString}}
	open := func(check string) func(t *testing.T) *sinktest.Target {
		return func(t *testing.T) *sinktest.Target {
			table := newTable(t, srv, db, "id bigserial, data text"+check)
			s := newSink(t, srv, db, table, cols)
			return &sinktest.Target{
				Sink:     s,
				Identity: func(b *sink.Batch) string { return b.ID },
				Held: func(t testing.TB) []sinktest.Held {
					// All rows in insertion order as one run: the body checks
					// each record is there once and in the stream's order.
					return []sinktest.Held{{Records: rowsOf(t, srv, db, table, "data")}}
				},
			}
		}
	}
	sinktest.Run(t, sinktest.Destination{
		Caps:         sinktest.Capabilities{Identity: true},
		Open:         open(""),
		OpenRefusing: open(", CHECK (data LIKE 'accepted%')"),
	})
}
