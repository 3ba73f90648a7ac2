package delivery

import (
	"math/big"
	"strings"
)

// seqCmp compares two decimal sequence numbers as big integers.
func seqCmp(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// seqCounter extracts the per-shard counter from a sequence number in the
// layout real Kinesis uses (47 hex digits: 2, 9 creation, 1 shard digit, 16
// counter, 00, 9 put time, 8 shard index, 2). ok is false for any other
// layout.
func seqCounter(seq string) (uint64, bool) {
	n, ok := new(big.Int).SetString(seq, 10)
	if !ok {
		return 0, false
	}
	h := n.Text(16)
	if len(h) != 47 || h[0] != '2' || h[46] != '2' {
		return 0, false
	}
	c, ok := new(big.Int).SetString(h[11:27], 16)
	if !ok || !c.IsUint64() {
		return 0, false
	}
	return c.Uint64(), true
}
