package stream

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
)

// u128 is an unsigned 128-bit integer: a hash key.
type u128 struct{ hi, lo uint64 }

var maxU128 = u128{^uint64(0), ^uint64(0)}

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) add1() u128 {
	lo, c := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + c, lo}
}

func (a u128) sub1() u128 {
	lo, b := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - b, lo}
}

func (a u128) big() *big.Int {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return new(big.Int).SetBytes(b[:])
}

func (a u128) String() string { return a.big().String() }

func u128FromBig(b *big.Int) u128 {
	var buf [16]byte
	b.FillBytes(buf[:])
	return u128{binary.BigEndian.Uint64(buf[:8]), binary.BigEndian.Uint64(buf[8:])}
}

// parseHashKey parses a decimal 128-bit hash key.
func parseHashKey(s string) (u128, error) {
	if s == "" || len(s) > 39 {
		return u128{}, fmt.Errorf("%w: hash key %q: want a decimal integer from 0 to 2^128-1", ErrInvalidArgument, s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return u128{}, fmt.Errorf("%w: hash key %q: want a decimal integer from 0 to 2^128-1", ErrInvalidArgument, s)
		}
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || b.BitLen() > 128 {
		return u128{}, fmt.Errorf("%w: hash key %q: want a decimal integer from 0 to 2^128-1", ErrInvalidArgument, s)
	}
	return u128FromBig(b), nil
}

// hashPartitionKey is the MD5 of the key's UTF-8 bytes as a big-endian
// 128-bit integer, as Kinesis routes records.
func hashPartitionKey(key string) u128 {
	sum := md5.Sum([]byte(key))
	return u128{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// evenRanges splits [0, 2^128-1] into n contiguous ranges as even as
// possible, returning their starting keys (ends are the next start - 1).
func evenRanges(n int) []u128 {
	starts := make([]u128, n)
	space := new(big.Int).Lsh(big.NewInt(1), 128)
	for i := 0; i < n; i++ {
		v := new(big.Int).Mul(space, big.NewInt(int64(i)))
		v.Div(v, big.NewInt(int64(n)))
		starts[i] = u128FromBig(v)
	}
	return starts
}
