package kinesisapi

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
)

// A fast path for the hot operation, PutRecords in JSON: a hand-written
// scanner for the plain shape every SDK sends, and a hand-written encoder
// for its answer. Anything unusual (escapes, non-ASCII, nulls, unknown or
// repeated keys, bad base64) makes fastPutRecords give up, and the request
// goes through encoding/json, which then decides. FuzzFastPutRecords checks
// that whenever the fast path accepts, it agrees with encoding/json.

type scanner struct {
	b []byte
	s string // b as a string, so that keys are substrings, not copies
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *scanner) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes, control or non-ASCII bytes.
func (p *scanner) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
		p.i++
	}
	return "", false
}

// fastPutRecords fills in from a PutRecords JSON body, or reports false
// (in is then to be discarded).
func fastPutRecords(body []byte, in *putRecordsInput) bool {
	p := &scanner{b: body, s: string(body)}
	if !p.byte('{') {
		return false
	}
	var slab []byte // all decoded data blobs, one allocation
	seen := 0
	for first := true; ; first = false {
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return false
		}
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return false
		}
		switch key {
		case "StreamName", "StreamARN":
			v, ok := p.str()
			if !ok {
				return false
			}
			bit := 1
			if key == "StreamARN" {
				bit = 2
				in.StreamARN = &v
			} else {
				in.StreamName = &v
			}
			if seen&bit != 0 {
				return false
			}
			seen |= bit
		case "Records":
			if seen&4 != 0 || !p.byte('[') {
				return false
			}
			seen |= 4
			slab = make([]byte, 0, base64.StdEncoding.DecodedLen(len(body)))
			in.Records = make([]putRecordsEntry, 0, 16)
			if !p.byte(']') {
				for {
					var e putRecordsEntry
					var ok bool
					if slab, ok = p.entry(&e, slab); !ok {
						return false
					}
					in.Records = append(in.Records, e)
					if p.byte(']') {
						break
					}
					if !p.byte(',') {
						return false
					}
				}
			}
		default:
			return false
		}
	}
	p.ws()
	return p.i == len(p.b)
}

func (p *scanner) entry(e *putRecordsEntry, slab []byte) ([]byte, bool) {
	if !p.byte('{') {
		return slab, false
	}
	seen := 0
	for first := true; ; first = false {
		if p.byte('}') {
			return slab, true
		}
		if !first && !p.byte(',') {
			return slab, false
		}
		key, ok := p.str()
		if !ok || !p.byte(':') {
			return slab, false
		}
		v, ok := p.str()
		if !ok {
			return slab, false
		}
		var bit int
		switch key {
		case "Data":
			bit = 1
			start := len(slab)
			n, err := base64.StdEncoding.Decode(slab[start:cap(slab)], []byte(v))
			if err != nil {
				return slab, false
			}
			slab = slab[:start+n]
			e.Data = slab[start : start+n : start+n]
		case "PartitionKey":
			bit = 2
			e.PartitionKey = &v
		case "ExplicitHashKey":
			bit = 4
			e.ExplicitHashKey = &v
		default:
			return slab, false
		}
		if seen&bit != 0 {
			return slab, false
		}
		seen |= bit
	}
}

// appendJSON encodes a PutRecords answer as encoding/json would, without
// reflection. Shard ids and sequence numbers are plain ASCII by
// construction; error strings go through encoding/json.
func (o putRecordsOutput) appendJSON(b []byte) []byte {
	b = append(b, `{"FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(o.FailedRecordCount), 10)
	b = append(b, `,"Records":[`...)
	for i, r := range o.Records {
		if i > 0 {
			b = append(b, ',')
		}
		if r.ErrorCode != "" {
			b = append(b, `{"ErrorCode":`...)
			b = appendJSONString(b, r.ErrorCode)
			b = append(b, `,"ErrorMessage":`...)
			b = appendJSONString(b, r.ErrorMessage)
			b = append(b, '}')
			continue
		}
		b = append(b, `{"ShardId":`...)
		b = appendJSONString(b, r.ShardId)
		b = append(b, `,"SequenceNumber":`...)
		b = appendJSONString(b, r.SequenceNumber)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
