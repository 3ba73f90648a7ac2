// Package streamtest holds helpers for tests that use a real stream store:
// it lives apart from internal/testutil so that testutil does not import
// gateway/stream, and the stream's own tests can use testutil.
package streamtest

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Open opens a real store with opts and creates each of streams that does
// not exist yet (a store a daemon left behind keeps its streams). An empty
// opts.Dir means a fresh t.TempDir(); a nil opts.Logger discards the logs.
// The store is closed when the test ends; closing it earlier is fine.
func Open(t testing.TB, opts stream.Options, streams ...stream.StreamConfig) *stream.Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	st, err := stream.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	for _, sc := range streams {
		if err := st.CreateStream(context.Background(), sc); err != nil && !errors.Is(err, stream.ErrStreamExists) {
			t.Fatal(err)
		}
	}
	return st
}

// ReadStream returns every record of a stream in the store, shard by shard
// in creation order, each shard in sequence order.
func ReadStream(t testing.TB, st *stream.Store, name string) []stream.Record {
	t.Helper()
	var out []stream.Record
	ReadBatches(t, st, name, 0, func(_ string, recs []stream.Record) { out = append(out, recs...) })
	return out
}

// ReadBatches calls fn with every stored record of a stream, in reads of
// up to limit records (0: the store's default), shard by shard in creation
// order, each shard in sequence order, without holding the whole stream in
// memory. fn must not keep recs beyond the call.
func ReadBatches(t testing.TB, st *stream.Store, name string, limit int, fn func(shardID string, recs []stream.Record)) {
	t.Helper()
	d, err := st.DescribeStream(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range d.Shards {
		after := ""
		for {
			res, err := st.Read(context.Background(), stream.ReadRequest{Stream: name, ShardID: sh.ShardID, After: after, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) == 0 {
				break
			}
			fn(sh.ShardID, res.Records)
			after = res.Records[len(res.Records)-1].SequenceNumber
		}
	}
}
