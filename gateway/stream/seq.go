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
	put, created := s.put&mask36, s.created&mask36
	return [3]uint64{
		2 | uint64(s.shard)<<4 | (put&(1<<28-1))<<36,
		put>>28 | (s.counter&(1<<48-1))<<16,
		s.counter>>48 | uint64(s.shard&0xf)<<16 | created<<20 | 2<<56,
	}
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

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// String prints the decimal form (one allocation).
func (s seqNum) String() string {
	var buf [64]byte
	return string(buf[s.format(&buf):])
}

// format writes the decimal form at the end of buf and returns where it
// starts.
func (s seqNum) format(buf *[64]byte) int {
	w := s.words()
	i := len(buf)
	const chunk = 10_000_000_000_000_000_000 // 1e19
	for w[0] != 0 || w[1] != 0 || w[2] != 0 {
		// Divide the 192-bit number by 1e19; r is the next 19 digits.
		var r uint64
		w[2], r = bits.Div64(0, w[2], chunk)
		w[1], r = bits.Div64(r, w[1], chunk)
		w[0], r = bits.Div64(r, w[0], chunk)
		last := w[0] == 0 && w[1] == 0 && w[2] == 0
		for d := 0; d < 18; d += 2 {
			if last && r == 0 {
				break
			}
			q := r / 100
			p := (r - q*100) * 2
			i -= 2
			buf[i], buf[i+1] = digitPairs[p], digitPairs[p+1]
			r = q
		}
		if !last || r != 0 {
			i--
			buf[i] = byte('0' + r)
		}
	}
	for i < len(buf)-1 && buf[i] == '0' {
		i++
	}
	return i
}

// counterStep is 2^80, the step between the decimal forms of consecutive
// counters with the same put time (the counter starts at bit 80).
const counterStep = "1208925819614629174706176"

// seqFormatter prints runs of sequence numbers: the next counter of the
// same shard and put second is one decimal addition away from the last
// number printed, instead of a 192-bit division.
type seqFormatter struct {
	buf   [64]byte
	start int
	last  seqNum
	ok    bool
}

// digits returns s in decimal; the bytes are valid until the next call.
func (f *seqFormatter) digits(s seqNum) []byte {
	l := f.last
	if f.ok && s.counter == l.counter+1 && s.put == l.put && s.created == l.created && s.shard == l.shard {
		carry := byte(0)
		i := len(f.buf) - 1
		for j := len(counterStep) - 1; j >= 0 || carry != 0; j-- {
			d := carry
			if j >= 0 {
				d += counterStep[j] - '0'
			}
			if i >= f.start {
				d += f.buf[i] - '0'
			}
			carry = 0
			if d >= 10 {
				d, carry = d-10, 1
			}
			f.buf[i] = '0' + d
			i--
		}
		f.start = min(f.start, i+1)
	} else {
		f.start = s.format(&f.buf)
	}
	f.last, f.ok = s, true
	return f.buf[f.start:]
}

// String is s in decimal (one allocation).
func (f *seqFormatter) String(s seqNum) string { return string(f.digits(s)) }

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
