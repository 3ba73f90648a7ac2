package pgsink_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/pgsink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

func TestSample(t *testing.T) {
	c := sinktest.Sample(t, "postgres").(*pgsink.Config)
	cn := c.Connection
	if cn.Port != pgsink.DefaultPort || cn.SSLMode != pgsink.DefaultSSLMode || cn.PasswordFile != "" ||
		c.LedgerTable != pgsink.DefaultLedgerTable || c.Timeout.Duration != pgsink.DefaultTimeout ||
		c.MaxConnections != pgsink.DefaultMaxConns || c.Columns[0].Nullable {
		t.Fatalf("sample.yaml does not show the defaults: %+v", c)
	}
}

// section decodes and validates a sync section the way the gateway does.
func section(t *testing.T, src string) error {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	_, err := config.Decode(node.Content[0])
	return err
}

func TestErrorsNameTheKey(t *testing.T) {
	const conn = `connection: {host: db, database: w, user: u}`
	const col = `columns: [{name: a, type: string}]`
	entry := func(pg string) string { return `[{name: a, stream: p, postgres: {` + pg + `}}]` }
	cases := map[string]string{
		entry(`table: t, ` + col):                                                                                   "sync[0].postgres.connection.host: must not be empty",
		entry(`connection: {host: db, user: u}, table: t, ` + col):                                                  "sync[0].postgres.connection.database: must not be empty",
		entry(`connection: {host: db, database: w}, table: t, ` + col):                                              "sync[0].postgres.connection.user: must not be empty",
		entry(`connection: {host: db, database: w, user: u, port: 70000}, table: t, ` + col):                        "sync[0].postgres.connection.port: 70000",
		entry(`connection: {host: db, database: w, user: u, sslmode: maybe}, table: t, ` + col):                     `sync[0].postgres.connection.sslmode: "maybe": want disable, allow, prefer`,
		entry(conn + `, ` + col):                                                                                    "sync[0].postgres.table: must not be empty",
		entry(conn + `, table: a.b.c, ` + col):                                                                      `sync[0].postgres.table: "a.b.c": want name or schema.name`,
		entry(conn + `, table: t`):                                                                                  "sync[0].postgres.columns: want at least one column",
		entry(conn + `, table: t, columns: [{name: a, type: string}, {name: b, type: int}, {name: c, type: blob}]`): `sync[0].postgres.columns[2].type: "blob": want string, int, bigint, double, boolean, timestamp, jsonb`,
		entry(conn + `, table: t, columns: [{name: a, type: string}, {name: a, type: int}]`):                        `sync[0].postgres.columns[1].name: "a" is listed twice`,
		entry(conn + `, table: t, columns: [{type: string}]`):                                                       "sync[0].postgres.columns[0].name: must not be empty",
		entry(conn + `, table: t, columns: [{name: a, from: "$shard", type: string}]`):                              `sync[0].postgres.columns[0].from: "$shard": want a JSON path`,
		entry(conn + `, table: t, columns: [{name: a, from: "x..y", type: string}]`):                                "sync[0].postgres.columns[0].from: \"x..y\": empty segment",
		entry(conn + `, table: t, columns: [{name: a, from: "$partition_key", type: int}]`):                         `sync[0].postgres.columns[0].type: "int": $partition_key converts to string`,
		entry(conn + `, table: t, ` + col + `, max_connections: -1`):                                                "sync[0].postgres.max_connections: -1: must not be negative",
		entry(conn + `, table: t, ` + col + `, ledger_table: ""`):                                                   "", // the default
		entry(conn + `, table: t, ` + col + `, staging: {}`):                                                        "sync[0].postgres.staging: set s3 or local",
		entry(conn + `, table: t, ` + col + `, staging: {s3: {bucket: b}, local: {}}`):                              "sync[0].postgres.staging: set s3 or local, not both",
		entry(conn + `, table: t, ` + col + `, staging: {s3: {prefix: x/}}`):                                        "sync[0].postgres.staging.s3.bucket: must not be empty",
		entry(conn + `, table: t, ` + col + `, staging: {local: {prefix: "!{x}"}}`):                                 "sync[0].postgres.staging.local.prefix: unknown expression",
		entry(conn + `, table: t, ` + col + `, bogus: 1`):                                                           "sync[0].postgres: line 1: field bogus not found",
		entry(conn + `, table: t, ` + col + `, ledger_table: ` + strings.Repeat("x", 64)):                           "sync[0].postgres.ledger_table:",
	}
	for src, want := range cases {
		err := section(t, src)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", src, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %q", src, err, want)
		}
	}
}

// The password is read from its file at start, relative to the data
// directory, and appears in no error; a missing file names the key.
func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pg.pw"), []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := pgsink.Config{Connection: pgsink.Connection{Host: "127.0.0.1", Port: 1, Database: "w", User: "u", PasswordFile: "pg.pw", SSLMode: "disable"},
		Table: "t", Columns: []pgsink.Column{{Name: "a", Type: "string"}}, Timeout: gconfig.Duration{Duration: 5 * time.Second}}
	s, err := cfg.Build(config.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.(*pgsink.Sink).Close()
	// Nothing listens on port 1: the check fails, and says nothing of the password.
	err = s.(*pgsink.Sink).Check(t.Context())
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("check against a closed port: %v", err)
	}
	cfg.Connection.PasswordFile = "missing.pw"
	if _, err := cfg.Build(config.Env{DataDir: dir}); err == nil || !strings.HasPrefix(err.Error(), "connection.password_file:") {
		t.Fatalf("missing password file: %v", err)
	}
}
