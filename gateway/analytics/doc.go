// Package analytics runs continuous SQL queries over Kaiten's streams, the
// edge counterpart of Kinesis Data Analytics: named queries in the config
// (section "analytics", see sample.yaml) or added through the admin
// endpoint, each a windowed aggregation whose results are JSON records in
// an output stream (default plate-stats) and live on the status board.
//
//	SELECT lane, plate_type, COUNT(*) AS taken
//	FROM plates WHERE event = 'taken'
//	GROUP BY lane, plate_type, TUMBLING(INTERVAL '1' MINUTE)
//
// emits, once per minute and group,
//
//	{"query":"plates_taken_per_minute","window_start":"2026-11-26T05:00:00.000Z",
//	 "window_end":"2026-11-26T05:01:00.000Z","lane":"3","plate_type":"salmon","taken":12}
//
// # Pieces
//
//   - Parse (sql.go) reads the SQL with a maintained MySQL-dialect parser
//     (github.com/dolthub/vitess) and compiles the tree into a Plan: field
//     paths, filters, group keys, aggregates, one window. Nothing of SQL's
//     grammar is written here; what the plan cannot do is refused with
//     ErrUnsupported quoting the part.
//   - Engine (engine.go) is the windowed operator: tumbling, hopping and
//     session windows over arrival or event time, a watermark per source
//     shard (the lowest of them counts, so a slow shard never makes another
//     one's records late), allowed lateness, late records as a side output.
//     It is deterministic, single-threaded and has no I/O, so its table
//     tests give exact outputs.
//   - Runner (runner.go) is a consumer group analytics-<query> on the
//     source stream: it feeds the engine, keeps the durable state
//     (state.go), writes results and late records, checkpoints, and keeps
//     the metrics and the status.
//   - Manager (manager.go) runs the queries and serves /api/queries.
//
// # Exactly once
//
// A query's per-shard positions, watermark and open windows are saved
// together in one state file, replaced atomically and fsynced, together
// with an outbox of the results not yet known to be in their stream. A
// result is written only after the state that produced it is saved; after
// a crash the engine skips what its saved positions cover, and the outbox
// is reconciled against the output stream, so every window is emitted
// exactly once (TestKillRestartExactlyOnce kills the real daemon to check).
// See state.go for why this is a file and not Badger.
//
// # Concurrency
//
// Engine is not safe for concurrent use. Runner and Manager are: the store
// calls a runner from one goroutine per shard and the runner serializes
// them; status and the admin endpoint may be called at any time.
package analytics
