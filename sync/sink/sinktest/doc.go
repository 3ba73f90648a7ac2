// Package sinktest holds what every destination's tests share: the
// conformance body (Run) that drives a real delivery stream over a real
// stream store into the destination, and the check of the destination's
// sample.yaml (Sample). Each destination calls them from its own tests
// against the real component it talks to (versitygw, a Firehose HTTP
// endpoint, a Kaiten Kinesis API, a directory).
package sinktest
