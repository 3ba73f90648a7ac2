package kinesisapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Content types of the two wire encodings.
const (
	ContentTypeJSON = "application/x-amz-json-1.1"
	ContentTypeCBOR = "application/x-amz-cbor-1.1"
)

// codec is one wire encoding. Request and response structs serve both:
// fxamacker/cbor reads the json tags, []byte is base64 in JSON and a byte
// string in CBOR, and Timestamp knows both AWS encodings.
type codec interface {
	contentType() string
	decode(body []byte, v any) error
	encode(v any) ([]byte, error)
}

type jsonCodec struct{}

func (jsonCodec) contentType() string { return ContentTypeJSON }

func (jsonCodec) decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil // AWS treats an empty body as {}
	}
	if body[0] != '{' {
		return errors.New("the request body must be a JSON object")
	}
	if in, ok := v.(*putRecordsInput); ok {
		if fastPutRecords(body, in) {
			return nil
		}
		*in = putRecordsInput{}
	}
	return json.Unmarshal(body, v)
}

// jsonAppender is implemented by answers with a hand-written encoder.
type jsonAppender interface{ appendJSON([]byte) []byte }

func (jsonCodec) encode(v any) ([]byte, error) {
	if a, ok := v.(jsonAppender); ok {
		return a.appendJSON(make([]byte, 0, 4096)), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type cborCodec struct{}

var (
	cborDec cbor.DecMode
	cborEnc cbor.EncMode
)

func init() {
	var err error
	cborDec, err = cbor.DecOptions{
		MaxNestedLevels:  16,
		MaxArrayElements: 20000,
		MaxMapPairs:      20000,
		DupMapKey:        cbor.DupMapKeyQuiet,
		IndefLength:      cbor.IndefLengthAllowed,
		// Field names are matched exactly, as AWS does.
		FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	cborEnc, err = cbor.EncOptions{Sort: cbor.SortNone}.EncMode()
	if err != nil {
		panic(err)
	}
}

func (cborCodec) contentType() string { return ContentTypeCBOR }

func (cborCodec) decode(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	// A request is a CBOR map: major type 5.
	if body[0]>>5 != 5 {
		return errors.New("the request body must be a CBOR map")
	}
	return cborDec.Unmarshal(body, v)
}

func (cborCodec) encode(v any) ([]byte, error) { return cborEnc.Marshal(v) }

// codecFor picks the codec from the request's Content-Type. Anything that
// is not CBOR is read as JSON (application/x-amz-json-1.1, application/json,
// or a missing header, which some hand-written clients send).
func codecFor(contentType string) codec {
	if strings.HasPrefix(strings.TrimSpace(strings.ToLower(contentType)), ContentTypeCBOR) {
		return cborCodec{}
	}
	return jsonCodec{}
}

// Timestamp is a point in time as AWS encodes it: in JSON 1.1 a number of
// seconds since the epoch (with a fraction for milliseconds); in CBOR tag 1
// around an integer of milliseconds, which is what the AWS SDKs for Java
// send and expect. On input it also accepts a plain number (integers are
// milliseconds in CBOR, seconds in JSON; floats are seconds) and an
// RFC 3339 string.
type Timestamp struct{ time.Time }

func epochSeconds(f float64) (time.Time, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 253402300799 {
		return time.Time{}, fmt.Errorf("timestamp %v is out of range", f)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6).UTC(), nil
}

func epochMillis(ms int64) (time.Time, error) {
	if ms < 0 || ms > 253402300799000 {
		return time.Time{}, fmt.Errorf("timestamp %d ms is out of range", ms)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			v, err := epochSeconds(f)
			t.Time = v
			return err
		}
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fmt.Errorf("timestamp %q: want epoch seconds or RFC 3339", s)
		}
		t.Time = v.UTC()
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("timestamp %.40q: want a number of epoch seconds", b)
	}
	v, err := epochSeconds(f)
	t.Time = v
	return err
}

// MarshalJSON implements json.Marshaler: epoch seconds with milliseconds.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// UnmarshalCBOR implements cbor.Unmarshaler.
func (t *Timestamp) UnmarshalCBOR(b []byte) error {
	if len(b) == 0 {
		return errors.New("timestamp: empty")
	}
	tagged := false
	if b[0] == 0xc1 { // tag 1: epoch-based date/time
		tagged = true
		b = b[1:]
	}
	var v any
	if err := cborDec.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("timestamp: %w", err)
	}
	var err error
	switch n := v.(type) {
	case nil:
		if tagged {
			return errors.New("timestamp: tag 1 around null")
		}
		return nil
	case uint64:
		if n > math.MaxInt64 {
			return errors.New("timestamp: out of range")
		}
		t.Time, err = epochMillis(int64(n))
	case int64:
		t.Time, err = epochMillis(n)
	case float64:
		t.Time, err = epochSeconds(n)
	case string:
		if tagged {
			return errors.New("timestamp: tag 1 around a string")
		}
		var p time.Time
		p, err = time.Parse(time.RFC3339Nano, n)
		t.Time = p.UTC()
	default:
		return fmt.Errorf("timestamp: unexpected CBOR %T", v)
	}
	return err
}

// MarshalCBOR implements cbor.Marshaler: tag 1 around epoch milliseconds.
func (t Timestamp) MarshalCBOR() ([]byte, error) {
	return cborEnc.Marshal(cbor.Tag{Number: 1, Content: t.UnixMilli()})
}
