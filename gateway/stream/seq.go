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

// The next counter of the same shard and put second is 2^80 more: in
// limbs of 19 decimal digits, 120892 and 5819614629174706176.
const (
	limb        = 10_000_000_000_000_000_000 // 1e19
	stepLow     = 5_819_614_629_174_706_176
	stepMid     = 120_892
	seqDigitsHi = 64 - 2*19 // where the middle limb starts in the buffer
)

// seqFormatter prints runs of sequence numbers: the next counter of the
// same shard and put second is a limb addition away from the last number
// printed, instead of a 192-bit division.
type seqFormatter struct {
	buf         [64]byte
	start       int
	lo, mid, hi uint64 // the last number in limbs of 19 digits
	last        seqNum
	ok          bool
}

// digits returns s in decimal; the bytes are valid until the next call.
func (f *seqFormatter) digits(s seqNum) []byte {
	l := f.last
	f.last = s
	if f.ok && s.counter == l.counter+1 && s.put == l.put && s.created == l.created && s.shard == l.shard {
		f.lo += stepLow
		f.mid += stepMid
		if f.lo >= limb {
			f.lo -= limb
			f.mid++
		}
		put19(f.buf[64-19:], f.lo)
		if f.mid >= limb {
			f.mid -= limb
			f.hi++
			f.start = f.putHigh()
		}
		put19(f.buf[seqDigitsHi:64-19], f.mid)
		return f.buf[f.start:]
	}
	w := s.words()
	var r [3]uint64
	for k := range r {
		w[2], r[k] = bits.Div64(0, w[2], limb)
		w[1], r[k] = bits.Div64(r[k], w[1], limb)
		w[0], r[k] = bits.Div64(r[k], w[0], limb)
	}
	f.lo, f.mid, f.hi = r[0], r[1], r[2]
	if w[0] != 0 || w[1] != 0 || w[2] != 0 || f.hi == 0 {
		// Not the 56-digit shape of a real sequence number: print it the
		// long way and do not step from it.
		f.ok = false
		f.start = s.format(&f.buf)
		return f.buf[f.start:]
	}
	f.ok = true
	put19(f.buf[64-19:], f.lo)
	put19(f.buf[seqDigitsHi:64-19], f.mid)
	f.start = f.putHigh()
	return f.buf[f.start:]
}

// putHigh prints the high limb (no leading zeros) before the middle one
// and returns where the number starts.
func (f *seqFormatter) putHigh() int {
	i := seqDigitsHi
	for h := f.hi; h > 0; h /= 10 {
		i--
		f.buf[i] = byte('0' + h%10)
	}
	return i
}

// put19 prints v (< 1e19) as exactly 19 digits into b.
func put19(b []byte, v uint64) {
	_ = b[18]
	for i := 17; i >= 1; i -= 2 {
		q := v / 100
		p := (v - q*100) * 2
		b[i], b[i+1] = digitPairs[p], digitPairs[p+1]
		v = q
	}
	b[0] = byte('0' + v)
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
