// Package streamtest holds helpers for tests that use a real stream store:
// it lives apart from internal/testutil so that testutil does not import
// gateway/stream, and the stream's own tests can use testutil.
package streamtest

import (
	"context"
	"testing"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// ReadStream returns every record of a stream in the store, shard by shard
// in creation order, each shard in sequence order.
func ReadStream(t testing.TB, st *stream.Store, name string) []stream.Record {
	t.Helper()
	d, err := st.DescribeStream(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []stream.Record
	for _, sh := range d.Shards {
		after := ""
		for {
			res, err := st.Read(context.Background(), stream.ReadRequest{Stream: name, ShardID: sh.ShardID, After: after})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Records) == 0 {
				break
			}
			out = append(out, res.Records...)
			after = res.Records[len(res.Records)-1].SequenceNumber
		}
	}
	return out
}
