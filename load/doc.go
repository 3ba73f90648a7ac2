// Package load holds the gateway's sustained-load soak (make test-long):
// TestLoadSoak runs a real kaiten daemon with the conveyor simulator ten
// times faster than real time (sim.speed 10), a Kinesis producer on top
// (about 2,000 records/s in all, the DESIGN.md memory target's rate) and 20
// dashboard websocket clients, samples the daemon's resident memory every
// second, and checks that its peak stays under 128 MiB and that its
// anonymous part (the Go heap, not Badger's mapped files) does not keep
// growing in the second half. It also checks that every acknowledged record
// is in the stream and that no dashboard was dropped.
//
// KAITEN_LOAD_DURATION (a Go duration, default 2m) sets how long it runs;
// KAITEN_LOAD_RATE (records/s through the Kinesis API, default 1800) the
// producer's rate.
package load
