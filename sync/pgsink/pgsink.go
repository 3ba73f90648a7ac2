// Package pgsink is the warehouse destination: rows in a PostgreSQL table
// (or anything speaking its protocol: TimescaleDB, and with differences
// noted in sync/README.md, Redshift), loaded with COPY through pgx.
//
// Each batch is one transaction that copies its rows and inserts the
// batch's identity (sink.Batch.ID, derived from stream, shard and sequence
// range) into a ledger table with a primary key, which Kaiten creates.
// A batch whose id is already in the ledger is acknowledged without
// copying again, so a crash between the commit and the stream's
// checkpoint never duplicates rows: the restarted gateway rebuilds the
// same batch (sync/delivery's intents), finds it in the ledger, and moves
// on. The ledger also keeps which records of the batch went to the error
// output and why, so the acknowledgement of a retry says the same.
//
// A record that does not convert to a row (a missing field, a wrong type,
// a value over a column's limit) goes to the error output with the
// reason; the rest of the batch is delivered. When the server refuses the
// copy for a reason retrying cannot fix (a constraint, a type), the batch
// is loaded again row by row, each under a savepoint, inside the same one
// transaction, and only the refused rows go to the error output.
// Connection loss, serialization failures, a full disk, an administrator's
// shutdown and the like are transient: the engine retries, and the backlog
// waits in the stream.
//
// With staging (s3 or local), each batch is first written there as one
// object under the key its identity gives, as Firehose stages Redshift
// loads; the copy still goes from the gateway.
//
// The table is Kaiten's to fill, not to define: a missing table, or a
// configured column it lacks or types differently, is reported (logged
// once, and in Degraded, which the delivery stream's status shows) and
// checked again before each retry, so a table created later is picked up.
package pgsink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

// Sentinel errors; both are transient (the backlog waits) and are what
// Degraded reports.
var (
	// ErrTableMissing is returned when the configured table does not
	// exist (or Kaiten's user cannot see it).
	ErrTableMissing = errors.New("pgsink: table missing")
	// ErrColumnMismatch is returned when a configured column is missing
	// from the table or has a type the column's type key cannot fill.
	ErrColumnMismatch = errors.New("pgsink: column mismatch")
)

// Sink is the PostgreSQL destination; safe for concurrent use (batches of
// different shards are copied on different connections).
type Sink struct {
	cfg    Config
	pool   *pgxpool.Pool
	table  pgx.Identifier
	ledger pgx.Identifier
	log    *slog.Logger
	// staging, if set, takes each batch as one object before the copy.
	staging sink.Sink

	mu       sync.Mutex
	cols     []column // with the table's limits, once checked
	ready    bool
	degraded string
	reported string
}

// New makes the destination for cfg and password (which only the
// connection sees: it is never logged nor kept in cfg). Nothing connects
// before the first batch.
func New(cfg Config, password string) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	pc, err := pgxpool.ParseConfig(connString(cfg.Connection))
	if err != nil {
		return nil, fmt.Errorf("pgsink: connection: %w", err)
	}
	pc.ConnConfig.Password = password
	pc.MaxConns = int32(cfg.MaxConnections)
	pc.ConnConfig.ConnectTimeout = min(cfg.Timeout.Duration, 30*time.Second)
	pc.ConnConfig.RuntimeParams["application_name"] = "kaiten"
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("pgsink: connection: %w", err)
	}
	s := &Sink{cfg: cfg, pool: pool, cols: newColumns(cfg.Columns), log: slog.Default().With("destination", "postgres")}
	s.table = identifier(cfg.Table)
	s.ledger = append(s.table[:len(s.table)-1:len(s.table)-1], cfg.LedgerTable)
	return s, nil
}

// SetLogger sets the logger; default slog.Default().
func (s *Sink) SetLogger(l *slog.Logger) { s.log = l.With("destination", "postgres") }

// Close closes the connections.
func (s *Sink) Close() { s.pool.Close() }

// connString is a keyword/value connection string without the password.
func connString(c Connection) string {
	q := func(v string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=%s", q(c.Host), c.Port, q(c.Database), q(c.User), q(c.SSLMode))
}

func identifier(table string) pgx.Identifier {
	return pgx.Identifier(strings.Split(table, "."))
}

// Kind implements sink.Sink.
func (s *Sink) Kind() string { return "postgres" }

// Degraded says why the destination cannot take batches although the
// server answers (a missing table, a column mismatch); "" when it can.
func (s *Sink) Degraded() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.degraded
}

// Check connects and checks the table and its columns, and creates the
// ledger table if missing. Deliver calls it until it succeeds once, and
// again after the server says the table or a column is gone. A gateway
// may call it at start to report a problem before the first batch.
func (s *Sink) Check(ctx context.Context) error {
	cols, err := s.check(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.cols, s.ready, s.degraded = cols, true, ""
		if s.reported != "" {
			s.log.Info("table ready", "table", s.cfg.Table)
			s.reported = ""
		}
	case errors.Is(err, ErrTableMissing) || errors.Is(err, ErrColumnMismatch):
		s.ready, s.degraded = false, err.Error()
		if s.reported != err.Error() {
			s.log.Error("cannot deliver: the backlog waits in the stream until the table is fixed", "table", s.cfg.Table, "err", err)
			s.reported = err.Error()
		}
	}
	return err
}

// compatible lists, for each column type, the table types (as
// information_schema.columns.data_type names them) it can fill.
var compatible = map[string][]string{
	TypeString:    {"text", "character varying", "character"},
	TypeInt:       {"integer", "bigint", "numeric"},
	TypeBigint:    {"bigint", "numeric"},
	TypeDouble:    {"double precision", "real", "numeric"},
	TypeBoolean:   {"boolean"},
	TypeTimestamp: {"timestamp with time zone", "timestamp without time zone"},
	TypeJSONB:     {"jsonb", "json"},
}

func (s *Sink) check(ctx context.Context) ([]column, error) {
	schema := ""
	if len(s.table) == 2 {
		schema = s.table[0]
	}
	name := s.table[len(s.table)-1]
	rows, err := s.pool.Query(ctx, `SELECT column_name, data_type, coalesce(character_maximum_length, 0)
		FROM information_schema.columns
		WHERE table_schema = coalesce(nullif($1, ''), current_schema()) AND table_name = $2`, schema, name)
	if err != nil {
		return nil, classify(fmt.Errorf("pgsink: check table %s: %w", s.cfg.Table, err))
	}
	type info struct {
		typ string
		max int
	}
	have := map[string]info{}
	for rows.Next() {
		var col, typ string
		var maxLen int
		if err := rows.Scan(&col, &typ, &maxLen); err != nil {
			rows.Close()
			return nil, fmt.Errorf("pgsink: check table %s: %w", s.cfg.Table, err)
		}
		have[col] = info{typ, maxLen}
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("pgsink: check table %s: %w", s.cfg.Table, err))
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("%w: %s does not exist (create it with the configured columns)", ErrTableMissing, s.cfg.Table)
	}
	cols := newColumns(s.cfg.Columns)
	var errs []error
	for i := range cols {
		c := &cols[i]
		in, ok := have[c.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: column %s: not in table %s", ErrColumnMismatch, c.Name, s.cfg.Table))
			continue
		}
		if !contains(compatible[c.Type], in.typ) {
			errs = append(errs, fmt.Errorf("%w: column %s: the table has %s, type %s fills %s", ErrColumnMismatch, c.Name, in.typ, c.Type, strings.Join(compatible[c.Type], ", ")))
			continue
		}
		c.maxChars = in.max
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	_, err = s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.ledger.Sanitize()+` (
		batch_id text PRIMARY KEY,
		delivery_stream text NOT NULL,
		stream text NOT NULL,
		shard_id text NOT NULL,
		first_sequence_number text NOT NULL,
		last_sequence_number text NOT NULL,
		rows integer NOT NULL,
		failed jsonb,
		committed_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil && !isCode(err, "23505", "42P07") { // another gateway created it at the same moment
		return nil, classify(fmt.Errorf("pgsink: create ledger %s: %w", s.ledger.Sanitize(), err))
	}
	return cols, nil
}

// Deliver implements sink.Sink: one transaction copies the batch's rows
// and records its id in the ledger; a batch already in the ledger is
// acknowledged as it was the first time.
func (s *Sink) Deliver(ctx context.Context, b *sink.Batch) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout.Duration)
	defer cancel()
	s.mu.Lock()
	ready, cols := s.ready, s.cols
	s.mu.Unlock()
	if !ready {
		if err := s.Check(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		cols = s.cols
		s.mu.Unlock()
	}
	if err := s.stage(ctx, b); err != nil {
		return err
	}
	cv := newConverter(cols)
	done, err := s.load(ctx, b, cv, false)
	if err != nil && errors.Is(err, sink.ErrPermanent) {
		s.log.Warn("copy refused; loading the batch row by row to find the refused rows", "batch", b.ID, "err", err)
		done, err = s.load(ctx, b, cv, true)
	}
	if err != nil {
		if isCode(err, "42P01", "42703") { // the table or a column went away
			s.mu.Lock()
			s.ready = false
			s.mu.Unlock()
		}
		return err
	}
	if len(done) > 0 {
		return &sink.RecordErrors{Failed: done}
	}
	return nil
}

// stage writes b to the staging destination, if any, as one gzip
// JSON-lines object under the key its identity gives.
func (s *Sink) stage(ctx context.Context, b *sink.Batch) error {
	if s.staging == nil {
		return nil
	}
	body, err := sink.Encode(b.Records, []byte("\n"), sink.Gzip, b.DeliveryStream+"-"+sink.UUID(b.ID))
	if err != nil {
		return fmt.Errorf("pgsink: staging: %w", err)
	}
	staged := *b
	staged.Body, staged.Ext, staged.ContentEncoding = body, sink.Ext(sink.Gzip), sink.Gzip
	if err := s.staging.Deliver(ctx, &staged); err != nil {
		return fmt.Errorf("pgsink: staging: %w", err)
	}
	return nil
}

// load runs the batch's transaction: the ledger lookup, the copy (or, by
// rows, an insert per row under a savepoint) and the ledger insert. It
// returns the records that go to the error output (by index into
// b.Records), as the ledger keeps them.
func (s *Sink) load(ctx context.Context, b *sink.Batch, cv *converter, byRow bool) (map[int]sink.RecordError, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("pgsink: begin: %w", err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if prev, ok, err := s.lookupLedger(ctx, tx, b.ID); err != nil || ok {
		return prev, err
	}
	names := make([]string, len(cv.cols))
	for i, c := range cv.cols {
		names[i] = c.Name
	}
	failed := map[int]sink.RecordError{}
	var n int64
	if !byRow {
		src := &rowSource{cv: cv, recs: b.Records, row: make([]any, len(cv.cols)), failed: failed}
		if n, err = tx.CopyFrom(ctx, s.table, names, src); err != nil {
			return nil, classify(fmt.Errorf("pgsink: copy into %s: %w", s.cfg.Table, err))
		}
	} else if n, err = s.insertRows(ctx, tx, cv, names, b.Records, failed); err != nil {
		return nil, err
	}
	var failedJSON []byte
	if len(failed) > 0 {
		m := make(map[string]sink.RecordError, len(failed))
		for i, e := range failed {
			m[strconv.Itoa(i)] = e
		}
		failedJSON, _ = json.Marshal(m)
	}
	_, err = tx.Exec(ctx, `INSERT INTO `+s.ledger.Sanitize()+` (batch_id, delivery_stream, stream, shard_id,
		first_sequence_number, last_sequence_number, rows, failed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		b.ID, b.DeliveryStream, b.Stream, b.ShardID, b.FirstSeq, b.LastSeq, n, failedJSON)
	if isCode(err, "23505") {
		// An earlier attempt whose acknowledgement was lost committed
		// while this one ran: take its result.
		_ = tx.Rollback(ctx)
		return s.ledgerResult(ctx, b.ID)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("pgsink: ledger insert: %w", err))
	}
	if err := tx.Commit(ctx); err != nil {
		// The outcome is unknown; the retry finds the batch in the ledger
		// if it committed.
		return nil, classify(fmt.Errorf("pgsink: commit: %w", err))
	}
	return failed, nil
}

// insertRows converts and inserts each record under its own savepoint,
// noting in failed the records that do not convert or that the server
// refuses for good, and returns how many rows it inserted. A transient
// error ends the whole attempt.
func (s *Sink) insertRows(ctx context.Context, tx pgx.Tx, cv *converter, names []string, recs []sink.Record, failed map[int]sink.RecordError) (int64, error) {
	quoted := make([]string, len(names))
	params := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
		params[i] = "$" + strconv.Itoa(i+1)
	}
	insert := "INSERT INTO " + s.table.Sanitize() + " (" + strings.Join(quoted, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
	var n int64
	row := make([]any, len(names))
	for i := range recs {
		if err := cv.row(&recs[i], row); err != nil {
			failed[i] = sink.RecordError{Code: CodeInvalidRecord, Message: err.Error()}
			continue
		}
		if _, err := tx.Exec(ctx, "SAVEPOINT kaiten_row"); err != nil {
			return 0, classify(fmt.Errorf("pgsink: savepoint: %w", err))
		}
		_, err := tx.Exec(ctx, insert, row...)
		if err == nil {
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT kaiten_row"); err != nil {
				return 0, classify(fmt.Errorf("pgsink: release savepoint: %w", err))
			}
			n++
			continue
		}
		err = classify(fmt.Errorf("pgsink: insert into %s: %w", s.cfg.Table, err))
		if !errors.Is(err, sink.ErrPermanent) {
			return 0, err
		}
		failed[i] = sink.RecordError{Code: "Permanent", Message: err.Error()}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT kaiten_row"); err != nil {
			return 0, classify(fmt.Errorf("pgsink: rollback to savepoint: %w", err))
		}
	}
	return n, nil
}

// lookupLedger reports whether id is in the ledger, and the records that
// batch sent to the error output.
func (s *Sink) lookupLedger(ctx context.Context, q pgx.Tx, id string) (map[int]sink.RecordError, bool, error) {
	var failed []byte
	err := q.QueryRow(ctx, `SELECT failed FROM `+s.ledger.Sanitize()+` WHERE batch_id = $1`, id).Scan(&failed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, classify(fmt.Errorf("pgsink: ledger lookup: %w", err))
	}
	out, err := decodeFailed(failed)
	return out, true, err
}

func (s *Sink) ledgerResult(ctx context.Context, id string) (map[int]sink.RecordError, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("pgsink: begin: %w", err))
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	out, ok, err := s.lookupLedger(ctx, tx, id)
	if err == nil && !ok {
		err = fmt.Errorf("pgsink: batch %s: ledger key taken but no row found", id)
	}
	return out, err
}

func decodeFailed(raw []byte) (map[int]sink.RecordError, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var m map[string]sink.RecordError
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("pgsink: ledger failed column: %w", err)
	}
	out := make(map[int]sink.RecordError, len(m))
	for k, e := range m {
		i, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("pgsink: ledger failed column: index %q", k)
		}
		out[i] = e
	}
	return out, nil
}

// isCode reports whether err is a server error with one of the SQLSTATE
// codes.
func isCode(err error, codes ...string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && contains(codes, pe.Code)
}

// classify marks the server's errors that retrying cannot fix as
// permanent: data exceptions (class 22: a value too long or out of range,
// bad text for a type), integrity constraints (class 23: unique, not
// null, check, foreign key) and a datatype mismatch (42804). Everything
// else is transient: connection exceptions (08), serialization failures
// and deadlocks (40), insufficient resources such as a full disk (53),
// an administrator's shutdown (57P01) and the like, a missing table or
// column (42P01, 42703) or privilege (42501) that an operator can fix,
// and errors that never reached the server.
func classify(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case strings.HasPrefix(pe.Code, "22"), strings.HasPrefix(pe.Code, "23"), pe.Code == "42804":
		return sink.Permanent(err)
	}
	return err
}
