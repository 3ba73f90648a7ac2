// Package peers is Kaiten's side-by-side benchmark against the tools a shop
// would otherwise use. It has no code of its own: TestBenchPeers (run by
// `make bench-peers`, never by `make test`) measures, in one run on one
// machine, the same workload on every contender:
//
//	200,000 records of 100 bytes over 1,000 partition keys
//
// and prints `BENCH <name> <value> <unit>` and `RATIO <name> <value>` lines.
//
// Contenders, each labelled with what "acknowledged" means for it:
//
//   - stream_append: gateway/stream PutBatch (500 records) from 8 producers,
//     4 shards; group commit, fsync before every acknowledgement.
//   - badger_fsync500: raw Badger WriteBatch of 500 records, one fsync per
//     batch, on the same Badger tuning as the store: the physical floor.
//   - jetstream_lazy and jetstream_sync_always: an embedded NATS server
//     (github.com/nats-io/nats-server/v2) with JetStream file storage, its
//     default lazy fsync (every 2 minutes) and `sync_interval: always`;
//     async publishes with acks, 8 producers.
//   - kinesis_putrecords: the kaiten daemon's Kinesis API driven by the
//     aws-sdk-go-v2 client, 500 records per PutRecords, 8 producers.
//   - kinesalite: the npm kinesalite (in memory, no fsync), installed by the
//     benchmark into a cache folder, same client and load.
//   - mqtt_ingest: QoS 1 publishes to the kaiten daemon's embedded broker,
//     whose PUBACK goes out after the durable append; 8 publishers with
//     500 messages in flight each.
//   - mosquitto_pubsub: the same publishers against mosquitto, timed until
//     a QoS 1 subscriber has received every message (mosquitto keeps
//     messages in memory: no fsync).
//
// In-process contenders run each in a child process of the test binary and
// servers run as child processes, so that every peak RSS figure (VmHWM
// from /proc/<pid>/status) belongs to one contender alone.
//
// This folder is its own Go module (bench/go.mod, with a replace of the
// main module to ../), so that nats-server and its dependencies stay out of
// the gateway's module and out of `make test`.
package peers
