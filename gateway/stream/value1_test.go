package stream

import "encoding/binary"

// putValue writes a record value of the first format (version 1, one
// record per Badger entry), which the store still reads: the raw-Badger
// baseline of the bench and the compatibility tests write it.
func putValue(b []byte, arrivalMs int64, pk string, data []byte) {
	b[0] = valueVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(arrivalMs))
	n := binary.PutUvarint(b[9:], uint64(len(pk)))
	copy(b[9+n:], pk)
	copy(b[9+n+len(pk):], data)
}
