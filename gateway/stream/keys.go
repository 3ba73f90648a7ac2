package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/dgraph-io/badger/v4"
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

// Record values come in two versions. Version 1 holds one record, keyed
// by its counter: version(1) arrival-ms(8) keylen(uvarint) key data.
// Version 2, what the writer stores, is a block: the records one commit
// appended to one shard (counters consecutive, one arrival time), keyed by
// the block's last counter so that Seek(counter) lands on the block that
// holds it:
//
//	version(1)=2 arrival-ms(8) count(uvarint) { keylen(uvarint) key datalen(uvarint) data }*count
//
// Blocks amortise Badger's per-entry cost (allocations on the write path,
// iterator steps on the read path) over up to maxBlockBytes of records
// (about 35 records of 100 bytes).
const (
	valueVersion = 1
	blockVersion = 2
	// maxBlockBytes caps a block's payload so that the block stays below
	// Badger's value threshold; a larger record is a block on its own.
	maxBlockBytes = valueThreshold - blockHeaderMax - 1
	// blockHeaderMax is the largest block header.
	blockHeaderMax = 1 + 8 + binary.MaxVarintLen64
)

// recordSize is a record's logical size, what byte caps and the stream's
// size count: its key and value as version 1 stores them.
func recordSize(pk string, data []byte) int64 {
	return int64(recordKeyLen + valueLen(pk, data))
}

// blockEntryLen is what one record takes inside a block.
func blockEntryLen(pk string, data []byte) int {
	return uvarintLen(uint64(len(pk))) + len(pk) + uvarintLen(uint64(len(data))) + len(data)
}

// putBlockHeader writes a block header into b and returns its length.
func putBlockHeader(b []byte, arrivalMs int64, count int) int {
	b[0] = blockVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(arrivalMs))
	return 9 + binary.PutUvarint(b[9:], uint64(count))
}

// putBlockEntry writes one record into b and returns its length.
func putBlockEntry(b []byte, pk string, data []byte) int {
	n := binary.PutUvarint(b, uint64(len(pk)))
	n += copy(b[n:], pk)
	n += binary.PutUvarint(b[n:], uint64(len(data)))
	return n + copy(b[n:], data)
}

// block is a decoded value header: the counters it holds (first to last)
// and where its records start.
type block struct {
	first, last uint64
	arrivalMs   int64
	body        []byte // the records; nil for a version 1 value
	v           []byte // the whole value
}

var errCorruptValue = errors.New("stream: corrupt record value")

// parseBlock reads the header of the value stored under counter key (the
// block's last counter); both versions are understood.
func parseBlock(key uint64, v []byte) (block, error) {
	if len(v) < 10 {
		return block{}, fmt.Errorf("%w (%d bytes)", errCorruptValue, len(v))
	}
	switch v[0] {
	case valueVersion:
		return block{first: key, last: key, arrivalMs: int64(binary.BigEndian.Uint64(v[1:9])), v: v}, nil
	case blockVersion:
		n, l := binary.Uvarint(v[9:])
		if l <= 0 || n == 0 || n > uint64(len(v)) || n > key {
			return block{}, fmt.Errorf("%w (%d bytes, bad count)", errCorruptValue, len(v))
		}
		return block{first: key - n + 1, last: key, arrivalMs: int64(binary.BigEndian.Uint64(v[1:9])), body: v[9+l:], v: v}, nil
	}
	return block{}, fmt.Errorf("%w (%d bytes, version %d)", errCorruptValue, len(v), v[0])
}

// blockAt reads the header of the block an iterator is on (its records
// are not read).
func blockAt(item *badger.Item) (block, error) {
	var b block
	err := item.Value(func(v []byte) error {
		var err error
		b, err = parseBlock(counterFromKey(item.Key()), v)
		b.body, b.v = nil, nil
		return err
	})
	return b, err
}

// blockReader walks a block's records in counter order; keys and data
// alias the value.
type blockReader struct {
	b   block
	ctr uint64
	off int
}

func (b block) reader() blockReader { return blockReader{b: b, ctr: b.first} }

// next returns the next record; ok is false after the last one, and err
// reports a block whose records do not fit its value.
func (r *blockReader) next() (ctr uint64, pk string, data []byte, ok bool, err error) {
	if r.ctr > r.b.last {
		if r.b.body != nil && r.off != len(r.b.body) {
			return 0, "", nil, false, fmt.Errorf("%w: %d bytes after the last record", errCorruptValue, len(r.b.body)-r.off)
		}
		return 0, "", nil, false, nil
	}
	if r.b.body == nil {
		_, pk, data, err = decodeValueAlias(r.b.v)
		if err != nil {
			return 0, "", nil, false, err
		}
		r.ctr++
		return r.b.first, pk, data, true, nil
	}
	body := r.b.body[r.off:]
	kl, n := binary.Uvarint(body)
	if n <= 0 || kl > uint64(len(body)-n) {
		return 0, "", nil, false, fmt.Errorf("%w: record %d: bad key length", errCorruptValue, r.ctr)
	}
	k := body[n : n+int(kl)]
	body = body[n+int(kl):]
	dl, m := binary.Uvarint(body)
	if m <= 0 || dl > uint64(len(body)-m) {
		return 0, "", nil, false, fmt.Errorf("%w: record %d: bad data length", errCorruptValue, r.ctr)
	}
	data = body[m : m+int(dl) : m+int(dl)]
	if len(k) > 0 {
		pk = unsafe.String(&k[0], len(k))
	}
	r.off += n + int(kl) + m + int(dl)
	ctr = r.ctr
	r.ctr++
	return ctr, pk, data, true, nil
}

// size is the logical size of the block's records (see recordSize) and
// their count; it reads the whole block.
func (b block) size() (int64, error) {
	r := b.reader()
	var total int64
	for {
		_, pk, data, ok, err := r.next()
		if err != nil {
			return 0, err
		}
		if !ok {
			return total, nil
		}
		total += recordSize(pk, data)
	}
}

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
