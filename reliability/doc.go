// Package reliability holds Kaiten's whole-system fault tests (issue 8):
// they run the real kaiten daemon as a child process and break it the way
// a shop's board breaks.
//
//   - TestCrashLoop: MQTT (QoS 1, the embedded broker) and Kinesis
//     PutRecords (aws-sdk-go-v2) ingest while the test SIGKILLs the daemon
//     at random moments; after every restart each acknowledged record is in
//     the stream (read back through GetRecords), sequence numbers keep
//     increasing across restarts, and the local delivery stream
//     (<data dir>/delivered/) holds no record twice; at the end every
//     record of the stream is delivered exactly once.
//   - TestPowerLoss: the same on a lazyfs mount (reliability/lazyfs), with
//     power cuts (unsynced writes dropped) instead of kills.
//   - TestTornFiles: Badger's files cut short or overwritten after a kill;
//     the daemon recovers every acknowledged record or refuses to start
//     with a clear message, and never starts empty.
//   - TestDiskFull: the data directory on an 8 MiB tmpfs; writes fail with
//     a retriable error, the daemon keeps running and serving reads, and
//     nothing stored is lost.
//
// Tests that mount (FUSE, tmpfs) need root, as CI has; they fail, never
// skip, without it. KAITEN_LONG=1 (make test-long) runs more rounds.
// The package has no code of its own: only tests.
package reliability
