package delivery

import (
	"sync"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

// chunkSize is the size of the pieces a lean batch's bytes are kept in.
const chunkSize = 256 << 10

var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize); return &b }}

// chunks holds a lean batch's bytes (records joined with the delimiter) in
// pooled pieces: growing it never copies what it holds, and a delivered
// batch's memory serves the next one (a record may span two pieces; the
// encoder joins them again).
type chunks []*[]byte

func (c *chunks) write(b []byte) {
	for len(b) > 0 {
		if len(*c) == 0 || len(*(*c)[len(*c)-1]) == chunkSize {
			*c = append(*c, chunkPool.Get().(*[]byte))
		}
		last := (*c)[len(*c)-1]
		n := min(len(b), chunkSize-len(*last))
		*last = append(*last, b[:n]...)
		b = b[n:]
	}
}

// records is the bytes as sink records, to encode with no delimiter.
func (c chunks) records() []sink.Record {
	out := make([]sink.Record, len(c))
	for i, p := range c {
		out[i].Data = *p
	}
	return out
}

// release gives the pieces back; c must not be used afterwards.
func (c chunks) release() {
	for _, p := range c {
		*p = (*p)[:0]
		chunkPool.Put(p)
	}
}
