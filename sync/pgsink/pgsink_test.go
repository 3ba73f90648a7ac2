package pgsink_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/internal/pgtest"
	"github.com/kaiten-edge/kaiten/sync/internal/s3test"
	"github.com/kaiten-edge/kaiten/sync/localsink"
	"github.com/kaiten-edge/kaiten/sync/pgsink"
	"github.com/kaiten-edge/kaiten/sync/sink"
	"github.com/kaiten-edge/kaiten/sync/sink/sinktest"
)

// plateColumns map the demo's plate records to a warehouse table.
var plateColumns = []pgsink.Column{
	{Name: "store", Type: pgsink.TypeString},
	{Name: "lane", From: "where.lane", Type: pgsink.TypeInt},
	{Name: "price", Type: pgsink.TypeDouble, Nullable: true},
	{Name: "pk", From: pgsink.FromPartitionKey, Type: pgsink.TypeString},
	{Name: "seq", From: pgsink.FromSequenceNumber, Type: pgsink.TypeString},
	{Name: "arrived", From: pgsink.FromArrivalTime, Type: pgsink.TypeTimestamp},
}

const plateTable = "id bigserial, store varchar(8), lane integer, price double precision, pk text, seq text UNIQUE, arrived timestamptz"

func plate(store string, lane int) string {
	return fmt.Sprintf(`{"store":%q,"where":{"lane":%d},"price":1.5}`, store, lane)
}

// rig is a stream store and a delivery stream from its "plates" stream
// into a postgres destination.
type rig struct {
	store *stream.Store
	ds    *delivery.Stream
	cfg   delivery.Config
	// stop ends the delivery stream and waits for it; test cleanup calls
	// it too.
	stop func()
}

func newRig(t *testing.T, s sink.Sink, shards int) *rig {
	t.Helper()
	st := streamtest.Open(t, stream.Options{}, stream.StreamConfig{Name: "plates", ShardCount: shards},
		stream.StreamConfig{Name: "deadletter", ShardCount: 1})
	return startRig(t, st, s, t.TempDir())
}

func startRig(t *testing.T, st *stream.Store, s sink.Sink, stateDir string) *rig {
	t.Helper()
	cfg := delivery.Config{Name: "warehouse", Stream: "plates", Sink: s, BufferInterval: -1, ReadLimit: 50,
		DeadLetter: "deadletter", RetryInitial: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond,
		StateDir: stateDir, StatusInterval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	ds, err := delivery.New(st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ds.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return &rig{store: st, ds: ds, cfg: cfg, stop: stop}
}

// put appends records with the given data, partition key k<i%4>, and
// returns their sequence numbers.
func (r *rig) put(t *testing.T, data ...string) []string {
	t.Helper()
	var entries []stream.Entry
	for i, d := range data {
		entries = append(entries, stream.Entry{PartitionKey: fmt.Sprintf("k%d", i%4), Data: []byte(d)})
	}
	res, err := r.store.PutBatch(context.Background(), "plates", entries)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for _, p := range res {
		if p.Err != nil {
			t.Fatal(p.Err)
		}
		seqs = append(seqs, p.SequenceNumber)
	}
	return seqs
}

// caughtUp waits until every shard is checkpointed at its last record.
func (r *rig) caughtUp(t *testing.T, wait time.Duration) {
	t.Helper()
	testutil.WaitFor(t, wait, func() error {
		d, err := r.store.DescribeStream("plates")
		if err != nil {
			return err
		}
		for _, sh := range d.Shards {
			last, err := r.store.LastSequenceNumber("plates", sh.ShardID)
			if err != nil {
				return err
			}
			ck, err := r.store.GetCheckpoint("warehouse", "plates", sh.ShardID)
			if err != nil {
				return err
			}
			if ck != last {
				return fmt.Errorf("shard %s checkpointed at %q, last %q; status %+v", sh.ShardID, ck, last, r.ds.Status())
			}
		}
		return nil
	})
}

// deadLetters returns the dead-letter stream's records as data → reason.
func (r *rig) deadLetters(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rec := range streamtest.ReadStream(t, r.store, "deadletter") {
		dl, err := stream.DecodeDeadLetter(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		out[string(dl.Data)] = dl.Reason
	}
	return out
}

// TestOrderedRows: rows land once each, in each shard's order, with the
// record's own fields (partition key, sequence number, arrival time) and
// JSON paths converted to the column types.
func TestOrderedRows(t *testing.T) {
	srv, db := server(t)
	table := newTable(t, srv, db, plateTable)
	r := newRig(t, newSink(t, srv, db, table, plateColumns), 1)
	var want []string
	for i := 0; i < 300; i++ {
		want = append(want, fmt.Sprintf("%d", i))
	}
	var data []string
	for _, w := range want {
		data = append(data, plate("s"+w, len(w)))
	}
	seqs := r.put(t, data...)
	r.caughtUp(t, 60*time.Second)
	if got := rowsOf(t, srv, db, table, "substr(store, 2)"); !slices.Equal(got, want) {
		t.Fatalf("stores in insertion order:\n got %v\nwant %v", got, want)
	}
	if got := rowsOf(t, srv, db, table, "seq"); !slices.Equal(got, seqs) {
		t.Fatalf("sequence numbers in insertion order:\n got %v\nwant %v", got, seqs)
	}
	if got := rowsOf(t, srv, db, table, "lane::text"); got[0] != "1" || got[299] != "3" {
		t.Fatalf("lanes %v…%v", got[0], got[299])
	}
	if got := rowsOf(t, srv, db, table, "pk"); got[1] != "k1" {
		t.Fatalf("partition keys %v", got[:4])
	}
	// Arrival times are the stream's, to the millisecond.
	recs := streamtest.ReadStream(t, r.store, "plates")
	got := rowsOf(t, srv, db, table, "(extract(epoch from arrived) * 1000)::bigint::text")
	if got[0] != fmt.Sprint(recs[0].ArrivalTime.UnixMilli()) {
		t.Fatalf("arrival %s, want %d", got[0], recs[0].ArrivalTime.UnixMilli())
	}
	if s := r.ds.Status(); s.DeliveredRecords != 300 || s.ErrorRecords != 0 || s.Degraded != "" {
		t.Fatalf("status %+v", s)
	}
}

// TestLedgerIdempotent: the same batch delivered twice, also by a second
// destination built after a "restart", copies its rows once, and each
// delivery reports the same refused records.
func TestLedgerIdempotent(t *testing.T) {
	srv, db := server(t)
	table := newTable(t, srv, db, plateTable)
	b := &sink.Batch{ID: sink.BatchID("warehouse", "shardId-000000000000", "1", "3"), DeliveryStream: "warehouse",
		Stream: "plates", ShardID: "shardId-000000000000", FirstSeq: "1", LastSeq: "3",
		Records: []sink.Record{
			{PartitionKey: "a", SequenceNumber: "1", ArrivalTime: time.Now(), Data: []byte(plate("one", 1))},
			{PartitionKey: "a", SequenceNumber: "2", ArrivalTime: time.Now(), Data: []byte(`{"store":"two"}`)},
			{PartitionKey: "a", SequenceNumber: "3", ArrivalTime: time.Now(), Data: []byte(plate("three", 3))},
		}}
	ctx := context.Background()
	var first map[int]sink.RecordError
	for i := range 3 {
		s := newSink(t, srv, db, table, plateColumns) // a fresh pool each time, as after a restart
		err := s.Deliver(ctx, b)
		var re *sink.RecordErrors
		if !errors.As(err, &re) || len(re.Failed) != 1 || re.Failed[1].Code != pgsink.CodeInvalidRecord {
			t.Fatalf("delivery %d: %v, want record 1 refused as %s", i, err, pgsink.CodeInvalidRecord)
		}
		if first == nil {
			first = re.Failed
		} else if re.Failed[1] != first[1] {
			t.Fatalf("delivery %d reports %+v, the first reported %+v", i, re.Failed[1], first[1])
		}
	}
	if !strings.Contains(first[1].Message, "where.lane") || !strings.Contains(first[1].Message, "missing field") {
		t.Fatalf("reason %q does not name the missing field", first[1].Message)
	}
	if got := rowsOf(t, srv, db, table, "store"); !slices.Equal(got, []string{"one", "three"}) {
		t.Fatalf("rows %v, want one and three once", got)
	}
	if got := query(t, srv, db, "SELECT batch_id || ' ' || rows FROM "+table+"_ledger"); !slices.Equal(got, []string{b.ID + " 2"}) {
		t.Fatalf("ledger %v", got)
	}
}

// TestBadRowsToErrorOutput: records that do not convert (missing field,
// wrong type, over the column's varchar limit, not JSON) and a row the
// server refuses (a unique key) go to the error output with the reason;
// the rest of each batch is delivered, in order.
func TestBadRowsToErrorOutput(t *testing.T) {
	srv, db := server(t)
	table := newTable(t, srv, db, plateTable+", CHECK (lane <> 13)")
	r := newRig(t, newSink(t, srv, db, table, plateColumns), 1)
	bad := map[string]string{
		`{"where":{"lane":1}}`:                         "column store (from store): missing field",
		`{"store":"s","where":{"lane":"one"}}`:         "a JSON string, want an integer",
		`{"store":"s","where":{"lane":3000000000}}`:    "over the int column's 32-bit limit",
		`{"store":"much-too-long","where":{"lane":1}}`: "13 characters, over the column's limit of 8",
		`not json`: "not a JSON object",
		`{"store":"s","where":{"lane":1},"price":"x"}`: "a JSON string, want a number",
		`{"store":"s13","where":{"lane":13}}`:          "check constraint",
	}
	var data, want []string
	i := 0
	for d := range bad {
		data = append(data, plate(fmt.Sprintf("ok%d", i), i), d)
		want = append(want, fmt.Sprintf("ok%d", i))
		i++
	}
	data = append(data, `{"store":"nullpr","where":{"lane":2},"price":null}`)
	want = append(want, "nullpr")
	r.put(t, data...)
	r.caughtUp(t, 60*time.Second)
	dead := r.deadLetters(t)
	if got := rowsOf(t, srv, db, table, "store"); !slices.Equal(got, want) {
		t.Fatalf("rows\n got %v\nwant %v\nerror output %v", got, want, dead)
	}
	for d, reason := range bad {
		if !strings.Contains(dead[d], reason) {
			t.Errorf("record %s: error output reason %q, want it to say %q", d, dead[d], reason)
		}
	}
	if len(dead) != len(bad) {
		t.Fatalf("%d records in the error output, want %d: %v", len(dead), len(bad), dead)
	}
	if s := r.ds.Status(); s.ErrorRecords != int64(len(bad)) || s.DeliveredRecords != int64(len(want)) {
		t.Fatalf("status %+v", s)
	}
}

// TestTableAppearsLater: a missing table, then a table lacking a column,
// are reported at start naming the table and the column, shown as
// degraded while the backlog waits in the stream; once the table is right
// the backlog drains without a restart.
func TestTableAppearsLater(t *testing.T) {
	srv, db := server(t)
	table := fmt.Sprintf("later%d", time.Now().UnixNano()%1e6)
	s := newSink(t, srv, db, table, plateColumns)
	r := newRig(t, s, 2)
	r.put(t, plate("a", 1), plate("b", 2), plate("c", 3))
	testutil.WaitFor(t, 30*time.Second, func() error {
		st := r.ds.Status()
		if !strings.Contains(st.Degraded, "table missing") || !strings.Contains(st.Degraded, table) || st.BacklogRecords != 3 {
			return fmt.Errorf("status %+v, want degraded naming the missing table and the backlog of 3 waiting", st)
		}
		return nil
	})
	if st := r.ds.Status(); st.DeliveredRecords != 0 {
		t.Fatalf("status %+v, want nothing delivered", st)
	}
	srv.Exec(t, db, fmt.Sprintf("CREATE TABLE %s (id bigserial, store text, lane integer, price double precision, pk text, seq text)", table))
	testutil.WaitFor(t, 30*time.Second, func() error {
		st := r.ds.Status()
		if !strings.Contains(st.Degraded, "column arrived") {
			return fmt.Errorf("status %+v, want degraded naming the column arrived", st)
		}
		return nil
	})
	srv.Exec(t, db, fmt.Sprintf("ALTER TABLE %s ADD COLUMN arrived timestamptz", table))
	r.caughtUp(t, 60*time.Second)
	got := rowsOf(t, srv, db, table, "store")
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("rows %v", got)
	}
	if st := r.ds.Status(); st.Degraded != "" || st.DeliveredRecords != 3 {
		t.Fatalf("status %+v after the table was fixed", st)
	}
}

// TestValidateDoesNotConnect: Validate and Build of a config that names an
// unreachable server succeed at once; only a batch connects.
func TestValidateDoesNotConnect(t *testing.T) {
	cfg := pgsink.Config{Connection: pgsink.Connection{Host: "192.0.2.1", Database: "w", User: "u"},
		Table: "plates", Columns: plateColumns}
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := cfg.Build(configEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.(*pgsink.Sink).Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("validate and build took %s: they connected", d)
	}
}

// TestStagingS3 stages in a real versitygw: the batch's object is under
// the key its identity gives, and holds its records.
func TestStagingS3(t *testing.T) {
	srv, db := server(t)
	table := newTable(t, srv, db, plateTable)
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "staging")
	s3cfg := s3.Config("staging")
	s3cfg.Prefix = "loads/"
	cfg := pgsink.Config{
		Connection: pgsink.Connection{Host: srv.Host, Port: srv.Port, Database: db, User: pgtest.User,
			PasswordFile: srv.PasswordFile, SSLMode: "disable"},
		Table: table, Columns: plateColumns, LedgerTable: table + "_ledger", Staging: &pgsink.Staging{S3: &s3cfg},
	}
	r := newRig(t, newSinkFrom(t, cfg), 1)
	r.put(t, plate("one", 1), plate("two", 2))
	r.caughtUp(t, 30*time.Second)
	keys, err := s3.Objects(context.Background(), "staging", "")
	if err != nil || len(keys) != 1 || !strings.HasPrefix(keys[0], "loads/") || !strings.HasSuffix(keys[0], ".gz") {
		t.Fatalf("staged objects %v %v", keys, err)
	}
	raw, err := s3.Get(context.Background(), "staging", keys[0])
	checkStaged(t, srv, db, table, raw, err)
}

// checkStaged checks that the staged object raw holds the two plates,
// and that the table holds their rows.
func checkStaged(t *testing.T, srv *pgtest.Server, db, table string, raw []byte, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if got := sinktest.Lines(t, raw, sink.Gzip); !slices.Equal(got, []string{plate("one", 1), plate("two", 2)}) {
		t.Fatalf("staged records %v", got)
	}
	if got := rowsOf(t, srv, db, table, "store"); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("rows %v", got)
	}
}

// TestStaging: with staging, each batch is first written as one gzip
// JSON-lines object keyed by its identity, then copied; a retried batch
// overwrites its object and copies nothing again.
func TestStaging(t *testing.T) {
	srv, db := server(t)
	table := newTable(t, srv, db, plateTable)
	dataDir := t.TempDir()
	cfg := pgsink.Config{
		Connection: pgsink.Connection{Host: srv.Host, Port: srv.Port, Database: db, User: pgtest.User,
			PasswordFile: srv.PasswordFile, SSLMode: "disable"},
		Table: table, Columns: plateColumns, LedgerTable: table + "_ledger",
		Staging: &pgsink.Staging{Local: &localsink.Config{Dir: "staged", Prefix: "warehouse/"}},
	}
	s := newSinkFrom(t, cfg, dataDir)
	b := &sink.Batch{ID: sink.BatchID("warehouse", "shardId-000000000000", "1", "2"), DeliveryStream: "warehouse", Version: 1,
		Stream: "plates", ShardID: "shardId-000000000000", FirstSeq: "1", LastSeq: "2", Time: time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC),
		Records: []sink.Record{
			{PartitionKey: "a", SequenceNumber: "1", ArrivalTime: time.Now(), Data: []byte(plate("one", 1))},
			{PartitionKey: "a", SequenceNumber: "2", ArrivalTime: time.Now(), Data: []byte(plate("two", 2))},
		}}
	for range 2 {
		if err := s.Deliver(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	var files []string
	root := filepath.Join(dataDir, "staged")
	_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return err
	})
	b.Ext = ".gz"
	want := filepath.Join(root, filepath.FromSlash(sink.ObjectKey("warehouse/", b)))
	if len(files) != 1 || files[0] != want {
		t.Fatalf("staged files %v, want %s", files, want)
	}
	raw, err := os.ReadFile(want)
	checkStaged(t, srv, db, table, raw, err)
}

// crashAfterCommit lets the real destination commit a batch, then "dies"
// before the acknowledgement reaches the engine: it holds the call until
// the delivery stream is stopped, so nothing is checkpointed.
type crashAfterCommit struct {
	sink.Sink
	committed chan struct{}
	once      sync.Once
}

func (c *crashAfterCommit) Deliver(ctx context.Context, b *sink.Batch) error {
	if err := c.Sink.Deliver(ctx, b); err != nil {
		return err
	}
	c.once.Do(func() { close(c.committed) })
	<-ctx.Done()
	return ctx.Err()
}

// TestCrashBetweenCommitAndCheckpoint: a batch committed whose checkpoint
// never happened (the gateway died in between) is rebuilt by the next
// delivery stream on the same store and state (the delivery intent), found
// in the ledger, and acknowledged without a second copy.
func TestCrashBetweenCommitAndCheckpoint(t *testing.T) {
	srv, db := server(t)
	// No unique key on seq: the table must not hide a second copy.
	table := newTable(t, srv, db, strings.Replace(plateTable, "seq text UNIQUE", "seq text", 1))
	s := newSink(t, srv, db, table, plateColumns)
	st := streamtest.Open(t, stream.Options{}, stream.StreamConfig{Name: "plates", ShardCount: 1},
		stream.StreamConfig{Name: "deadletter", ShardCount: 1})
	state := t.TempDir()
	crash := &crashAfterCommit{Sink: s, committed: make(chan struct{})}
	r := startRig(t, st, crash, state)
	var data, want []string
	for i := range 30 {
		data = append(data, plate(fmt.Sprintf("s%d", i), i))
		want = append(want, fmt.Sprintf("s%d", i))
	}
	r.put(t, data...)
	select {
	case <-crash.committed:
	case <-time.After(30 * time.Second):
		t.Fatal("no batch committed in 30 s")
	}
	r.stop()
	if ck, err := st.GetCheckpoint("warehouse", "plates", "shardId-000000000000"); err != nil || ck != "" {
		t.Fatalf("checkpoint %q %v after the crash, want none", ck, err)
	}
	committed := query(t, srv, db, "SELECT count(*)::text FROM "+table)
	if committed[0] == "0" {
		t.Fatal("the crashed delivery committed nothing")
	}
	r = startRig(t, st, s, state)
	r.caughtUp(t, 30*time.Second)
	if got := rowsOf(t, srv, db, table, "store"); !slices.Equal(got, want) {
		t.Fatalf("rows after the restart (%s committed before the crash)\n got %v\nwant %v", committed[0], got, want)
	}
	if dead := r.deadLetters(t); len(dead) > 0 {
		t.Fatalf("error output %v", dead)
	}
	t.Logf("%s rows committed before the crash; each of %d once after the restart", committed[0], len(want))
}
