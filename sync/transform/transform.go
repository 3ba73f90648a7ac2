// Package transform holds record transformations for delivery streams: the
// Firehose data-transformation contract over HTTP (HTTP) and a built-in
// select/rename/drop transform (Builtin) for the common case.
//
// A Transformer gets records and returns one Result per record, in the same
// order: Ok (deliver Data), Dropped (acknowledged, not delivered) or
// ProcessingFailed (goes to the error output with Message).
package transform

import (
	"context"
	"time"
)

// Result values, as in the Firehose transformation contract.
const (
	Ok               = "Ok"
	Dropped          = "Dropped"
	ProcessingFailed = "ProcessingFailed"
)

// Record is one record to transform.
type Record struct {
	// ID is unique within a call (the sequence number).
	ID          string
	ArrivalTime time.Time
	Data        []byte
}

// Result is the outcome for one record.
type Result struct {
	Result  string // Ok, Dropped or ProcessingFailed
	Data    []byte // the transformed data, for Ok
	Message string // why, for ProcessingFailed
}

// Transformer transforms records. Implementations are safe for concurrent
// use. The returned slice has exactly one Result per input record, in
// order; an error means the whole call failed and is transient (the caller
// may retry or count every record as ProcessingFailed).
type Transformer interface {
	Transform(ctx context.Context, recs []Record) ([]Result, error)
}
