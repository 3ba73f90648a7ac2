package stream

import (
	"math/big"
	"testing"
)

func FuzzSeqRoundTrip(f *testing.F) {
	f.Add(uint64(1_700_000_000), uint64(0), uint64(1_700_000_001), uint32(0))
	f.Add(uint64(mask36), ^uint64(0), uint64(mask36), ^uint32(0))
	f.Add(uint64(0), uint64(1), uint64(0), uint32(17))
	f.Fuzz(func(t *testing.T, created, counter, put uint64, shard uint32) {
		sn := seqNum{created: created & mask36, counter: counter, put: put & mask36, shard: shard}
		s := sn.String()
		// Cross-check the hand-written decimal conversion with math/big.
		w := sn.words()
		b := new(big.Int).Lsh(new(big.Int).SetUint64(w[2]), 128)
		b.Or(b, new(big.Int).Lsh(new(big.Int).SetUint64(w[1]), 64))
		b.Or(b, new(big.Int).SetUint64(w[0]))
		if b.String() != s {
			t.Fatalf("decimal %s, math/big says %s", s, b)
		}
		if hex := b.Text(16); len(hex) != 47 || hex[0] != '2' || hex[46] != '2' {
			t.Fatalf("layout %s", hex)
		}
		back, err := parseSeq(s)
		if err != nil || back != sn {
			t.Fatalf("round trip %+v -> %s -> %+v (%v)", sn, s, back, err)
		}
		next := sn
		next.counter++
		if counter != ^uint64(0) && !seqLess(s, next.String()) {
			t.Fatal("counter order not kept")
		}
	})
}

func FuzzParseSeq(f *testing.F) {
	f.Add("49546986683135544286507457936321625675700192471156785154")
	f.Add("0")
	f.Add("")
	f.Add("99999999999999999999999999999999999999999999999999999999999")
	f.Fuzz(func(t *testing.T, s string) {
		sn, err := parseSeq(s)
		if err != nil {
			return
		}
		// Anything accepted must print back to a number of equal value.
		a, _ := new(big.Int).SetString(s, 10)
		b, _ := new(big.Int).SetString(sn.String(), 10)
		if a == nil || b == nil || a.Cmp(b) != 0 {
			t.Fatalf("%q parsed to %+v which prints %s", s, sn, sn.String())
		}
	})
}

func FuzzHashKey(f *testing.F) {
	f.Add("0")
	f.Add("340282366920938463463374607431768211455")
	f.Add("340282366920938463463374607431768211456")
	f.Add("-1")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHashKey(s)
		if err != nil {
			return
		}
		b, _ := new(big.Int).SetString(s, 10)
		if h.big().Cmp(b) != 0 {
			t.Fatalf("%q -> %s", s, h)
		}
	})
}

func FuzzDecodeValue(f *testing.F) {
	b := make([]byte, valueLen("key", []byte("data")))
	putValue(b, 123, "key", []byte("data"))
	f.Add(uint64(7), b)
	blk := make([]byte, blockHeaderMax+2*blockEntryLen("key", []byte("data")))
	n := putBlockHeader(blk, 123, 2)
	n += putBlockEntry(blk[n:], "key", []byte("data"))
	n += putBlockEntry(blk[n:], "", nil)
	f.Add(uint64(9), blk[:n])
	f.Add(uint64(1), []byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 5, 1})
	f.Fuzz(func(t *testing.T, key uint64, v []byte) {
		// Must never panic, and never yield more records than the header
		// says or bytes outside the value.
		b, err := parseBlock(key, v)
		if err != nil {
			return
		}
		r := b.reader()
		seen := 0
		for {
			ctr, _, data, ok, err := r.next()
			if err != nil || !ok {
				break
			}
			if ctr != b.first+uint64(seen) || len(data) > len(v) {
				t.Fatalf("record %d: counter %d, %d bytes", seen, ctr, len(data))
			}
			seen++
		}
		if n := b.last - b.first + 1; uint64(seen) > n {
			t.Fatalf("%d records from a block of %d", seen, n)
		}
	})
}

func FuzzIterator(f *testing.F) {
	s := openTest(f)
	mustCreate(f, s, "f", 1)
	good, _ := s.ShardIterator(IteratorRequest{Stream: "f", ShardID: "shardId-000000000000", Type: TrimHorizon})
	f.Add(good)
	f.Add("AAAAAAAAAAE=")
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, tok string) {
		_, _, _, _, err := s.decodeIterator(tok)
		if err == nil && tok != good {
			// Only tokens sealed by this store decode; base64 has
			// alternative encodings of the same bytes, so compare bytes.
			if _, _, _, _, e2 := s.decodeIterator(good); e2 != nil {
				t.Fatal(e2)
			}
		}
	})
}
