package delivery

import (
	"bytes"
	"testing"
)

// TestChunks: writes of any size, also across piece boundaries, read back
// in order; released pieces come back empty.
func TestChunks(t *testing.T) {
	var c chunks
	var want []byte
	for i := 0; i < 3000; i++ {
		rec := bytes.Repeat([]byte{byte(i)}, i%700)
		rec = append(rec, '\n')
		c.write(rec)
		want = append(want, rec...)
	}
	c.write(bytes.Repeat([]byte{'x'}, 3*chunkSize+5)) // one write over several pieces
	want = append(want, bytes.Repeat([]byte{'x'}, 3*chunkSize+5)...)
	var got []byte
	for _, r := range c.records() {
		if len(r.Data) > chunkSize {
			t.Fatalf("a piece of %d bytes", len(r.Data))
		}
		got = append(got, r.Data...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d (or different bytes)", len(got), len(want))
	}
	c.release()
	var d chunks
	d.write([]byte("next"))
	if r := d.records(); len(r) != 1 || string(r[0].Data) != "next" {
		t.Fatalf("after release: %q", r)
	}
}
