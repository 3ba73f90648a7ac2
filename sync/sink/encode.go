package sink

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
)

// Compression formats, as Firehose names them (lower case).
const (
	None   = ""
	Gzip   = "gzip"
	Snappy = "snappy" // the Snappy framing format
	Zip    = "zip"
)

// ValidCompression checks a compression name.
func ValidCompression(c string) error {
	switch c {
	case None, Gzip, Snappy, Zip:
		return nil
	}
	return fmt.Errorf("%q: want none, gzip, snappy or zip", c)
}

// Ext is the object name extension Firehose gives a compression.
func Ext(c string) string {
	switch c {
	case Gzip:
		return ".gz"
	case Snappy:
		return ".snappy"
	case Zip:
		return ".zip"
	}
	return ""
}

var gzPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// Encode joins the records' data, each followed by delimiter (which may be
// empty), and compresses the result. name is the entry name inside a zip.
// It is safe for concurrent use.
func Encode(recs []Record, delimiter []byte, compression, name string) ([]byte, error) {
	size := 0
	for _, r := range recs {
		size += len(r.Data) + len(delimiter)
	}
	var buf bytes.Buffer
	switch compression {
	case None:
		buf.Grow(size)
		writeAll(&buf, recs, delimiter)
	case Gzip:
		buf.Grow(size/4 + 64)
		w := gzPool.Get().(*gzip.Writer)
		w.Reset(&buf)
		writeAll(w, recs, delimiter)
		err := w.Close()
		gzPool.Put(w)
		if err != nil {
			return nil, fmt.Errorf("encode gzip: %w", err)
		}
	case Snappy:
		w := snappy.NewBufferedWriter(&buf)
		writeAll(w, recs, delimiter)
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("encode snappy: %w", err)
		}
	case Zip:
		zw := zip.NewWriter(&buf)
		w, err := zw.Create(name)
		if err != nil {
			return nil, fmt.Errorf("encode zip: %w", err)
		}
		writeAll(w, recs, delimiter)
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("encode zip: %w", err)
		}
	default:
		return nil, fmt.Errorf("encode: unknown compression %q", compression)
	}
	return buf.Bytes(), nil
}

// writeAll writes to an in-memory writer; its errors surface at Close.
func writeAll(w io.Writer, recs []Record, delimiter []byte) {
	for _, r := range recs {
		_, _ = w.Write(r.Data)
		if len(delimiter) > 0 {
			_, _ = w.Write(delimiter)
		}
	}
}

// Decode undoes Encode's compression (for tests and tools).
func Decode(body []byte, compression string) ([]byte, error) {
	switch compression {
	case None:
		return body, nil
	case Gzip:
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	case Snappy:
		return io.ReadAll(snappy.NewReader(bytes.NewReader(body)))
	case Zip:
		zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			_, err = io.Copy(&out, rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
		}
		return out.Bytes(), nil
	}
	return nil, fmt.Errorf("decode: unknown compression %q", compression)
}

// ErrorLine is one line of an error output object, in Firehose's S3 error
// output format plus the record's origin.
type ErrorLine struct {
	AttemptsMade           int    `json:"attemptsMade"`
	ArrivalTimestamp       int64  `json:"arrivalTimestamp"`
	ErrorCode              string `json:"errorCode"`
	ErrorMessage           string `json:"errorMessage"`
	AttemptEndingTimestamp int64  `json:"attemptEndingTimestamp"`
	RawData                string `json:"rawData"`
	DeliveryStream         string `json:"deliveryStream"`
	Stream                 string `json:"stream"`
	ShardID                string `json:"shardId"`
	SequenceNumber         string `json:"sequenceNumber"`
	PartitionKey           string `json:"partitionKey"`
}

// EncodeErrors renders an error batch as JSON lines; ending is the
// attemptEndingTimestamp in Unix milliseconds.
func EncodeErrors(b *ErrorBatch, ending int64) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range b.Records {
		_ = enc.Encode(ErrorLine{
			AttemptsMade: r.Attempts, ArrivalTimestamp: r.ArrivalTime.UnixMilli(),
			ErrorCode: r.Code, ErrorMessage: r.Message, AttemptEndingTimestamp: ending,
			RawData: base64.StdEncoding.EncodeToString(r.Data), DeliveryStream: b.DeliveryStream,
			Stream: b.Stream, ShardID: b.ShardID, SequenceNumber: r.SequenceNumber, PartitionKey: r.PartitionKey,
		})
	}
	return buf.Bytes()
}
