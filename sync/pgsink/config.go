package pgsink

import (
	_ "embed" // sample.yaml
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/sync/config"
	"github.com/kaiten-edge/kaiten/sync/localsink"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Defaults of zero config values.
const (
	DefaultPort        = 5432
	DefaultSSLMode     = "prefer"
	DefaultLedgerTable = "kaiten_batches"
	DefaultTimeout     = 2 * time.Minute
	DefaultMaxConns    = 4
)

// Column types a column's type key may name.
const (
	TypeString    = "string"
	TypeInt       = "int"
	TypeBigint    = "bigint"
	TypeDouble    = "double"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeJSONB     = "jsonb"
)

var types = []string{TypeString, TypeInt, TypeBigint, TypeDouble, TypeBoolean, TypeTimestamp, TypeJSONB}

// The record's own fields a column's from key may name instead of a path
// into the record's JSON.
const (
	FromPartitionKey   = "$partition_key"
	FromSequenceNumber = "$sequence_number"
	FromArrivalTime    = "$arrival_time"
	// FromData is the whole record: its bytes as text (string) or as one
	// JSON value (jsonb).
	FromData = "$data"
)

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

// Config configures the destination: the value of a sync entry's postgres
// key (see sample.yaml). Zero values mean the defaults. The retry keys are
// the delivery stream's own (retry.initial, retry.max, retry.duration).
type Config struct {
	Connection Connection `yaml:"connection"`
	// Table receives the rows: "name" or "schema.name". Required. Kaiten
	// never creates it (its columns are the operator's choice); a missing
	// table holds the backlog in the stream until it appears.
	Table string `yaml:"table"`
	// Columns map record fields to the table's columns, in order.
	// Required, at least one.
	Columns []Column `yaml:"columns"`
	// LedgerTable is the batch ledger Kaiten creates, in the table's
	// schema. Default kaiten_batches.
	LedgerTable string `yaml:"ledger_table"`
	// Timeout bounds one batch's delivery (connect, copy, commit).
	// Default 2m.
	Timeout gconfig.Duration `yaml:"timeout"`
	// MaxConnections bounds the connections to the server. Default 4.
	MaxConnections int `yaml:"max_connections"`
	// Staging, when set, receives each batch before it is copied.
	Staging *Staging `yaml:"staging"`
}

// Staging is where each batch is written before it is copied, as Firehose
// stages Redshift loads in S3: one gzip JSON-lines object per batch, its
// key derived from the batch's identity (Firehose's S3 key layout), so a
// retried batch overwrites its own object. The copy itself still goes
// from the gateway (COPY FROM STDIN): PostgreSQL cannot read S3, so the
// staged objects are the load's record, to replay or audit. Set s3 or
// local, not both; their keys are the s3 and local destinations' own.
type Staging struct {
	S3    *s3sink.Config    `yaml:"s3"`
	Local *localsink.Config `yaml:"local"`
}

func (st *Staging) validate() error {
	switch {
	case st.S3 != nil && st.Local != nil:
		return errors.New("staging: set s3 or local, not both")
	case st.S3 != nil:
		if err := st.S3.Validate(); err != nil {
			return config.PrefixKey("staging.s3", err)
		}
	case st.Local != nil:
		if err := st.Local.Validate(); err != nil {
			return config.PrefixKey("staging.local", err)
		}
	default:
		return errors.New("staging: set s3 or local")
	}
	return nil
}

func (st *Staging) build(env config.Env) (sink.Sink, error) {
	if st.S3 != nil {
		s, err := st.S3.Build(env)
		if err != nil {
			return nil, config.PrefixKey("staging.s3", err)
		}
		return s, nil
	}
	s, err := st.Local.Build(env)
	if err != nil {
		return nil, config.PrefixKey("staging.local", err)
	}
	return s, nil
}

// Connection is where the server is and who Kaiten is there.
type Connection struct {
	// Host is a host name, an address or a Unix socket directory.
	// Required.
	Host string `yaml:"host"`
	// Port; default 5432.
	Port int `yaml:"port"`
	// Database is required.
	Database string `yaml:"database"`
	// User is required.
	User string `yaml:"user"`
	// PasswordFile holds the password (its first line); relative to the
	// data directory. Empty: no password (trust, peer or certificate
	// authentication, or PGPASSFILE). The password is read at start and
	// never logged.
	PasswordFile string `yaml:"password_file"`
	// SSLMode is libpq's sslmode: disable, allow, prefer (default),
	// require, verify-ca or verify-full.
	SSLMode string `yaml:"sslmode"`
}

// Column is one column of the table and where its value comes from.
type Column struct {
	// Name is the column's name in the table. Required.
	Name string `yaml:"name"`
	// From is a dot-separated path into the record's JSON object
	// ("store.lane"), or one of the record's own fields: $partition_key,
	// $sequence_number, $arrival_time, $data. Default: the column's name
	// as a top-level JSON field.
	From string `yaml:"from"`
	// Type is how the value is read: string, int (32 bits), bigint,
	// double, boolean, timestamp (RFC 3339 text or Unix milliseconds) or
	// jsonb (any JSON value). Required.
	Type string `yaml:"type"`
	// Nullable lets a missing field or a JSON null become NULL; without
	// it, the record goes to the error output. Default false.
	Nullable bool `yaml:"nullable"`
}

// Validate checks the config without connecting or reading a file; errors
// name the key, e.g. `columns[2].type: "blob": want string, int, …`.
func (c *Config) Validate() error {
	var errs []error
	cn := c.Connection
	if cn.Host == "" {
		errs = append(errs, errors.New("connection.host: must not be empty"))
	}
	if cn.Port < 0 || cn.Port > 65535 {
		errs = append(errs, fmt.Errorf("connection.port: %d: want 1-65535", cn.Port))
	}
	if cn.Database == "" {
		errs = append(errs, errors.New("connection.database: must not be empty"))
	}
	if cn.User == "" {
		errs = append(errs, errors.New("connection.user: must not be empty"))
	}
	if cn.SSLMode != "" && !contains(sslModes, cn.SSLMode) {
		errs = append(errs, fmt.Errorf("connection.sslmode: %q: want %s", cn.SSLMode, strings.Join(sslModes, ", ")))
	}
	if err := validTable(c.Table); err != nil {
		errs = append(errs, fmt.Errorf("table: %w", err))
	}
	if c.LedgerTable != "" {
		if err := validIdent(c.LedgerTable); err != nil {
			errs = append(errs, fmt.Errorf("ledger_table: %w", err))
		}
	}
	if c.Timeout.Duration < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s: must not be negative", c.Timeout.Duration))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("max_connections: %d: must not be negative", c.MaxConnections))
	}
	if len(c.Columns) == 0 {
		errs = append(errs, errors.New("columns: want at least one column"))
	}
	if c.Staging != nil {
		if err := c.Staging.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	seen := map[string]bool{}
	for i, col := range c.Columns {
		key := fmt.Sprintf("columns[%d]", i)
		if err := validIdent(col.Name); err != nil {
			errs = append(errs, fmt.Errorf("%s.name: %w", key, err))
		} else if seen[col.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q is listed twice", key, col.Name))
		}
		seen[col.Name] = true
		if !contains(types, col.Type) {
			errs = append(errs, fmt.Errorf("%s.type: %q: want %s", key, col.Type, strings.Join(types, ", ")))
		}
		if err := validFrom(col.From); err != nil {
			errs = append(errs, fmt.Errorf("%s.from: %w", key, err))
		} else if want, ok := selfTypes[col.From]; ok && contains(types, col.Type) && !contains(want, col.Type) {
			errs = append(errs, fmt.Errorf("%s.type: %q: %s converts to %s", key, col.Type, col.From, strings.Join(want, ", ")))
		}
	}
	return errors.Join(errs...)
}

func validFrom(from string) error {
	if strings.HasPrefix(from, "$") {
		switch from {
		case FromPartitionKey, FromSequenceNumber, FromArrivalTime, FromData:
			return nil
		}
		return fmt.Errorf("%q: want a JSON path such as store.lane, or %s, %s, %s or %s", from, FromPartitionKey, FromSequenceNumber, FromArrivalTime, FromData)
	}
	if from == "" {
		return nil
	}
	for _, part := range strings.Split(from, ".") {
		if part == "" {
			return fmt.Errorf("%q: empty segment in a dot-separated path", from)
		}
	}
	return nil
}

// validTable checks "name" or "schema.name".
func validTable(t string) error {
	if t == "" {
		return errors.New("must not be empty")
	}
	parts := strings.Split(t, ".")
	if len(parts) > 2 {
		return fmt.Errorf("%q: want name or schema.name", t)
	}
	for _, p := range parts {
		if err := validIdent(p); err != nil {
			return fmt.Errorf("%q: %w", t, err)
		}
	}
	return nil
}

// validIdent checks a PostgreSQL identifier: 1-63 bytes of UTF-8 without
// NUL (quoted on use, so any other character is allowed).
func validIdent(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > 63:
		return fmt.Errorf("%q: longer than PostgreSQL's 63 bytes", s)
	case !utf8.ValidString(s) || strings.ContainsRune(s, 0):
		return fmt.Errorf("%q: not valid UTF-8 text", s)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// withDefaults fills in the defaults of zero values.
func (c Config) withDefaults() Config {
	if c.Connection.Port == 0 {
		c.Connection.Port = DefaultPort
	}
	if c.Connection.SSLMode == "" {
		c.Connection.SSLMode = DefaultSSLMode
	}
	if c.LedgerTable == "" {
		c.LedgerTable = DefaultLedgerTable
	}
	if c.Timeout.Duration == 0 {
		c.Timeout.Duration = DefaultTimeout
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConns
	}
	cols := make([]Column, len(c.Columns))
	for i, col := range c.Columns {
		if col.From == "" {
			col.From = col.Name
		}
		cols[i] = col
	}
	c.Columns = cols
	return c
}

// Build implements config.Destination: it reads the password file (a
// relative path from env.DataDir) and makes the connection pool, which
// connects on the first batch. A missing table is not an error here: it
// is reported, and the backlog waits, until it appears.
func (c *Config) Build(env config.Env) (sink.Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var password string
	if p := c.Connection.PasswordFile; p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(env.DataDir, p)
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("connection.password_file: %w", err)
		}
		password, _, _ = strings.Cut(string(raw), "\n")
		password = strings.TrimSuffix(password, "\r")
	}
	s, err := New(*c, password)
	if err != nil {
		return nil, err
	}
	if c.Staging != nil {
		if s.staging, err = c.Staging.build(env); err != nil {
			s.Close()
			return nil, err
		}
	}
	if env.Logger != nil {
		s.SetLogger(env.Logger)
	}
	return s, nil
}

//go:embed sample.yaml
var sample []byte

func init() {
	config.Register(config.Factory{Key: "postgres", Order: 50, Sample: sample, New: func() config.Destination { return new(Config) }})
}
