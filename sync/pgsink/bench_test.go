package pgsink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kaiten-edge/kaiten/gateway/stream"
	"github.com/kaiten-edge/kaiten/gateway/stream/streamtest"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/delivery"
	"github.com/kaiten-edge/kaiten/sync/internal/pgtest"
	"github.com/kaiten-edge/kaiten/sync/pgsink"
)

// TestBenchReport measures the warehouse path (make bench): N plate
// records already stored in a 4-shard stream, drained by a delivery stream
// into PostgreSQL (JSON fields to typed columns, one ledgered transaction
// per batch), against a plain pgx CopyFrom of the same rows (already Go
// values, no JSON, no ledger) by 4 workers in batches of the same size,
// into a twin table of the same server in the same run.
// KAITEN_BENCH_RECORDS overrides N (default 500,000).
func TestBenchReport(t *testing.T) {
	n := testutil.BenchRecords(t, 500_000)
	const shards = 4
	srv := pgtest.Start(t)
	db := srv.CreateDatabase(t)
	const defs = "store text, lane integer, plate_type text, n bigint, seq text"
	srv.Exec(t, db, "CREATE TABLE via_kaiten ("+defs+"); CREATE TABLE via_copy ("+defs+")")
	ctx := context.Background()

	st := streamtest.Open(t, stream.Options{}, stream.StreamConfig{Name: "plates", ShardCount: shards})
	type plate struct {
		Store     string `json:"store"`
		Lane      int    `json:"lane"`
		PlateType string `json:"plate_type"`
		N         int64  `json:"n"`
	}
	rows := make([][][]any, shards) // the reference's rows, by shard
	shardOf := map[string]int{}
	d, err := st.DescribeStream("plates")
	if err != nil {
		t.Fatal(err)
	}
	for i, sh := range d.Shards {
		shardOf[sh.ShardID] = i
	}
	var entries []stream.Entry
	for i := range n {
		p := plate{Store: "demo-store", Lane: i % 8, PlateType: "salmon", N: int64(i)}
		data, _ := json.Marshal(p)
		entries = append(entries, stream.Entry{PartitionKey: fmt.Sprintf("demo-store/%d", i%64), Data: data})
		if len(entries) == 500 || i == n-1 {
			res, err := st.PutBatch(ctx, "plates", entries)
			if err != nil {
				t.Fatal(err)
			}
			for j, r := range res {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				var q plate
				_ = json.Unmarshal(entries[j].Data, &q)
				s := shardOf[r.ShardID]
				rows[s] = append(rows[s], []any{q.Store, int64(q.Lane), q.PlateType, q.N, r.SequenceNumber})
			}
			entries = entries[:0]
		}
	}

	// Kaiten: a delivery stream drains the backlog.
	cfg := pgsink.Config{
		Connection: pgsink.Connection{Host: srv.Host, Port: srv.Port, Database: db, User: pgtest.User,
			PasswordFile: srv.PasswordFile, SSLMode: "disable"},
		Table: "via_kaiten", MaxConnections: shards,
		Columns: []pgsink.Column{
			{Name: "store", Type: pgsink.TypeString}, {Name: "lane", Type: pgsink.TypeInt},
			{Name: "plate_type", Type: pgsink.TypeString}, {Name: "n", Type: pgsink.TypeBigint},
			{Name: "seq", From: pgsink.FromSequenceNumber, Type: pgsink.TypeString},
		},
	}
	built, err := cfg.Build(configEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	s := built.(*pgsink.Sink)
	defer s.Close()
	if err := s.Check(ctx); err != nil { // connect and create the ledger outside the timing
		t.Fatal(err)
	}
	ds, err := delivery.New(st, delivery.Config{Name: "warehouse", Stream: "plates", Sink: s, BufferInterval: time.Second,
		StateDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); _ = ds.Run(rctx) }()
	// A fine tick: testutil.WaitFor's backs off to 200 ms, too coarse
	// for a drain of about a second.
	deadline := time.Now().Add(30 * time.Minute)
	for ds.Status().DeliveredRecords < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered after 30 minutes", ds.Status().DeliveredRecords, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	kaiten := time.Since(start)
	batches := ds.Status().DeliveredBatches
	cancel()
	<-done

	// The reference: the same rows, CopyFrom by 4 workers, one
	// transaction per batch of the delivery stream's average size.
	per := max(1, n/int(batches))
	conns := make([]*pgx.Conn, shards)
	for i := range conns {
		conns[i] = srv.Connect(t, db)
	}
	start = time.Now()
	var wg sync.WaitGroup
	for w := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(rows[w]); i += per {
				chunk := rows[w][i:min(i+per, len(rows[w]))]
				tx, err := conns[w].Begin(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"via_copy"}, []string{"store", "lane", "plate_type", "n", "seq"}, pgx.CopyFromRows(chunk)); err != nil {
					t.Error(err)
					return
				}
				if err := tx.Commit(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	plain := time.Since(start)

	for _, table := range []string{"via_kaiten", "via_copy"} {
		if got := query(t, srv, db, "SELECT count(*)::text FROM "+table); got[0] != strconv.Itoa(n) {
			t.Fatalf("%s holds %s rows, want %d", table, got[0], n)
		}
	}
	rate := func(d time.Duration) float64 { return float64(n) / d.Seconds() }
	fmt.Printf("BENCH warehouse_kaiten records=%d batches=%d seconds=%.2f rows_per_s=%.0f\n", n, batches, kaiten.Seconds(), rate(kaiten))
	fmt.Printf("BENCH warehouse_plain_copy records=%d batch_rows=%d seconds=%.2f rows_per_s=%.0f\n", n, per, plain.Seconds(), rate(plain))
	fmt.Printf("RATIO warehouse_vs_copy %.2f\n", rate(kaiten)/rate(plain))
}
