package stream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// DeadLetter is a record of a dead-letter stream (by default
// NameDeadLetter): input that a component could not store or deliver as
// asked, with the reason and the original bytes. It is the one definition
// of the format that the MQTT ingest, the analytics queries and sync write
// and the dashboard reads.
//
// On the wire it is one JSON object, fields in this order:
//
//	{"source":…,"topic":…,"reason":…,"data_b64":…,"ts":…}
//
// followed by "size" and "truncated" when they are not zero (cut input),
// and by "stream", "shard_id", "sequence_number" and "partition_key" (all
// four, even empty) when Origin is set. Encode it with Encode (or json.Marshal, which calls it)
// and read it with DecodeDeadLetter.
type DeadLetter struct {
	// Source names the component that wrote it: "mqtt", "analytics",
	// "sync". It is also the record's partition key (see Entry).
	Source string
	// Topic says where the input came from within the source: an MQTT
	// topic, a stream/shard/sequence number, a delivery stream's name.
	Topic string
	// Reason is "class: detail", the class a short word a metric can count.
	Reason string
	// Data is the original bytes (encoded as standard base64), cut when
	// Truncated is set.
	Data []byte
	// TS is when it was written, RFC 3339 in UTC; each source keeps its
	// own precision.
	TS string
	// Size is the original length when Data was cut; zero otherwise.
	Size int
	// Truncated is set when Data holds only the first bytes of the input.
	Truncated bool
	// Origin, when set, names the stored record the dead letter is a copy
	// of (sync writes it for records it could not deliver).
	Origin *DeadLetterOrigin
}

// DeadLetterOrigin is the stored record a dead letter copies.
type DeadLetterOrigin struct {
	Stream         string `json:"stream"`
	ShardID        string `json:"shard_id"`
	SequenceNumber string `json:"sequence_number"`
	PartitionKey   string `json:"partition_key"`
}

// deadLetterJSON is the wire form; the field order is the format's.
type deadLetterJSON struct {
	Source    string `json:"source"`
	Topic     string `json:"topic"`
	Reason    string `json:"reason"`
	DataB64   string `json:"data_b64"`
	TS        string `json:"ts"`
	Size      int    `json:"size,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	*DeadLetterOrigin
}

// Encode returns the record's JSON.
func (d DeadLetter) Encode() []byte {
	b, _ := json.Marshal(d.wire()) // cannot fail: strings, numbers and a bool
	return b
}

// Entry returns the dead letter as an entry to put, keyed by its source.
func (d DeadLetter) Entry() Entry {
	return Entry{PartitionKey: d.Source, Data: d.Encode()}
}

// MarshalJSON makes json.Marshal produce Encode's bytes.
func (d DeadLetter) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.wire())
}

// UnmarshalJSON makes json.Unmarshal read what DecodeDeadLetter reads.
func (d *DeadLetter) UnmarshalJSON(b []byte) error {
	v, err := DecodeDeadLetter(b)
	*d = v
	return err
}

func (d DeadLetter) wire() deadLetterJSON {
	return deadLetterJSON{Source: d.Source, Topic: d.Topic, Reason: d.Reason,
		DataB64: base64.StdEncoding.EncodeToString(d.Data), TS: d.TS, Size: d.Size, Truncated: d.Truncated,
		DeadLetterOrigin: d.Origin}
}

// DecodeDeadLetter reads one dead-letter record. Fields it does not know
// are ignored and absent ones stay zero. It returns an error wrapping
// ErrInvalidDeadLetter when data is not a JSON object of the format or
// data_b64 is not standard base64; the fields read before the error are
// returned with it.
func DecodeDeadLetter(data []byte) (DeadLetter, error) {
	var w deadLetterJSON
	err := json.Unmarshal(data, &w)
	d := DeadLetter{Source: w.Source, Topic: w.Topic, Reason: w.Reason, TS: w.TS, Size: w.Size,
		Truncated: w.Truncated, Origin: w.DeadLetterOrigin}
	if err != nil {
		return d, fmt.Errorf("%w: %w", ErrInvalidDeadLetter, err)
	}
	if d.Data, err = base64.StdEncoding.DecodeString(w.DataB64); err != nil {
		return d, fmt.Errorf("%w: data_b64: %w", ErrInvalidDeadLetter, err)
	}
	return d, nil
}
