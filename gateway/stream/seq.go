package stream

import (
	"fmt"
	"math/bits"
)

// A sequence number is 47 hex digits printed as one decimal number, laid
// out as real Kinesis lays them out (most significant first):
//
//	2 | shard creation time (9 hex, s) | low hex digit of shard index |
//	per-shard counter (16 hex) | 00 | put time (9 hex, s) | shard index (8 hex) | 2
//
// Within a shard only the counter changes order: creation time and index
// are fixed per shard, and the put time sits below the counter, so a wall
// clock that jumps back never reorders anything.
type seqNum struct {
	created uint64 // shard creation, unix seconds (36 bits)
	counter uint64
	put     uint64 // unix seconds (36 bits)
	shard   uint32 // shard index
}

const mask36 = 1<<36 - 1

// words is the 188-bit value in three little-endian 64-bit words.
func (s seqNum) words() [3]uint64 {
	var w [3]uint64
	set := func(pos uint, width uint, v uint64) {
		for width > 0 {
			i := pos / 64
			off := pos % 64
			n := 64 - off
			if n > width {
				n = width
			}
			m := uint64(1)<<n - 1
			if n == 64 {
				m = ^uint64(0)
			}
			w[i] |= (v & m) << off
			v >>= n % 64
			if n == 64 {
				v = 0
			}
			pos += n
			width -= n
		}
	}
	set(0, 4, 2)
	set(4, 32, uint64(s.shard))
	set(36, 36, s.put&mask36)
	set(80, 64, s.counter)
	set(144, 4, uint64(s.shard&0xf))
	set(148, 36, s.created&mask36)
	set(184, 4, 2)
	return w
}

func getBits(w [3]uint64, pos, width uint) uint64 {
	var v uint64
	var got uint
	for got < width {
		i := pos / 64
		off := pos % 64
		n := 64 - off
		if n > width-got {
			n = width - got
		}
		part := w[i] >> off
		if n < 64 {
			part &= uint64(1)<<n - 1
		}
		v |= part << got
		got += n
		pos += n
	}
	return v
}

// String prints the decimal form.
func (s seqNum) String() string {
	w := s.words()
	var buf [64]byte
	i := len(buf)
	const chunk = 10_000_000_000_000_000_000 // 1e19
	for w[0] != 0 || w[1] != 0 || w[2] != 0 {
		// divide the 192-bit number by 1e19
		var r uint64
		w[2], r = bits.Div64(0, w[2], chunk)
		w[1], r = bits.Div64(r, w[1], chunk)
		w[0], r = bits.Div64(r, w[0], chunk)
		for d := 0; d < 19; d++ {
			i--
			buf[i] = byte('0' + r%10)
			r /= 10
			if w[0] == 0 && w[1] == 0 && w[2] == 0 && r == 0 {
				break
			}
		}
	}
	return string(buf[i:])
}

// parseSeq parses a decimal sequence number and checks its fixed digits.
func parseSeq(s string) (seqNum, error) {
	bad := func() (seqNum, error) {
		return seqNum{}, fmt.Errorf("%w: sequence number %q is not one of this store's", ErrInvalidArgument, s)
	}
	if len(s) == 0 || len(s) > 60 {
		return bad()
	}
	var w [3]uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return bad()
		}
		// w = w*10 + d
		var carry uint64 = uint64(c - '0')
		for j := 0; j < 3; j++ {
			hi, lo := bits.Mul64(w[j], 10)
			lo, c2 := bits.Add64(lo, carry, 0)
			w[j] = lo
			carry = hi + c2
		}
		if carry != 0 || w[2]>>60 != 0 {
			return bad()
		}
	}
	if getBits(w, 0, 4) != 2 || getBits(w, 184, 4) != 2 || getBits(w, 72, 8) != 0 {
		return bad()
	}
	sn := seqNum{
		shard:   uint32(getBits(w, 4, 32)),
		put:     getBits(w, 36, 36),
		counter: getBits(w, 80, 64),
		created: getBits(w, 148, 36),
	}
	if getBits(w, 144, 4) != uint64(sn.shard&0xf) {
		return bad()
	}
	return sn, nil
}
