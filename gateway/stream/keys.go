package stream

import (
	"encoding/binary"
	"fmt"
	"time"
	"unsafe"
)

// Badger key layout. Every key starts with a one-byte kind.
//
//	'm' name                      stream metadata (JSON)
//	'r' sid(4) shard(4) ctr(8)    a record
//	'h' sid(4) shard(4)           the shard's highest assigned counter
//	's' sid(4)                    the stream's logical bytes and record count
//	'c' sid(4) group 0 shardID    a consumer group's checkpoint
//	'l' sid(4) group 0 shardID    a consumer group's lease
//	'n'                           the next stream id
//	'k'                           the iterator key (AES-256)
const (
	kindMeta       = 'm'
	kindRecord     = 'r'
	kindHighWater  = 'h'
	kindStats      = 's'
	kindCheckpoint = 'c'
	kindLease      = 'l'
	kindNextID     = 'n'
	kindIterKey    = 'k'
)

const recordKeyLen = 17

func metaKey(name string) []byte { return append([]byte{kindMeta}, name...) }

func putRecordKey(b []byte, sid, shard uint32, ctr uint64) {
	b[0] = kindRecord
	binary.BigEndian.PutUint32(b[1:5], sid)
	binary.BigEndian.PutUint32(b[5:9], shard)
	binary.BigEndian.PutUint64(b[9:17], ctr)
}

func recordKey(sid, shard uint32, ctr uint64) []byte {
	b := make([]byte, recordKeyLen)
	putRecordKey(b, sid, shard, ctr)
	return b
}

func shardPrefix(sid, shard uint32) []byte {
	b := make([]byte, 9)
	b[0] = kindRecord
	binary.BigEndian.PutUint32(b[1:5], sid)
	binary.BigEndian.PutUint32(b[5:9], shard)
	return b
}

func sidPrefix(kind byte, sid uint32) []byte {
	b := make([]byte, 5)
	b[0] = kind
	binary.BigEndian.PutUint32(b[1:5], sid)
	return b
}

func highWaterKey(sid, shard uint32) []byte {
	b := shardPrefix(sid, shard)
	b[0] = kindHighWater
	return b
}

func groupKey(kind byte, sid uint32, group, shardID string) []byte {
	b := sidPrefix(kind, sid)
	b = append(b, group...)
	b = append(b, 0)
	return append(b, shardID...)
}

func counterFromKey(k []byte) uint64 { return binary.BigEndian.Uint64(k[9:17]) }

// Record values: version(1) arrival-ms(8) keylen(uvarint) key data.
const valueVersion = 1

func valueLen(pk string, data []byte) int {
	return 1 + 8 + uvarintLen(uint64(len(pk))) + len(pk) + len(data)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func putValue(b []byte, arrivalMs int64, pk string, data []byte) {
	b[0] = valueVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(arrivalMs))
	n := binary.PutUvarint(b[9:], uint64(len(pk)))
	copy(b[9+n:], pk)
	copy(b[9+n+len(pk):], data)
}

// decodeValueAlias splits a stored value; the key and the data alias v,
// which must never change afterwards.
func decodeValueAlias(v []byte) (arrivalMs int64, pk string, data []byte, err error) {
	if len(v) < 10 || v[0] != valueVersion {
		return 0, "", nil, fmt.Errorf("stream: corrupt record value (%d bytes)", len(v))
	}
	arrivalMs = int64(binary.BigEndian.Uint64(v[1:9]))
	l, n := binary.Uvarint(v[9:])
	if n <= 0 || uint64(len(v)-9-n) < l {
		return 0, "", nil, fmt.Errorf("stream: corrupt record value (%d bytes)", len(v))
	}
	k := v[9+n : 9+n+int(l)]
	if len(k) > 0 {
		pk = unsafe.String(&k[0], len(k))
	}
	d := v[9+n+int(l):]
	return arrivalMs, pk, d[:len(d):len(d)], nil
}

// arrivalOf reads only the arrival time of a stored value.
func arrivalOf(v []byte) int64 {
	if len(v) < 9 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[1:9]))
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms) }
