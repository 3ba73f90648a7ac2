package analytics

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/axiomhq/hyperloglog"
)

// aggKind is an aggregate function.
type aggKind uint8

const (
	aggCountStar aggKind = iota
	aggCount
	aggSum
	aggAvg
	aggMin
	aggMax
	aggDistinct   // APPROX_COUNT_DISTINCT: HyperLogLog, about 1% error
	aggPercentile // APPROX_PERCENTILE(x, q): DDSketch, 1% relative error
)

// percentileAccuracy is the DDSketch relative accuracy of APPROX_PERCENTILE.
const percentileAccuracy = 0.01

var aggNames = map[string]aggKind{
	"count": aggCount, "sum": aggSum, "avg": aggAvg, "min": aggMin, "max": aggMax,
	"approx_count_distinct": aggDistinct, "approx_distinct": aggDistinct,
	"approx_percentile": aggPercentile, "percentile_approx": aggPercentile,
}

// aggSpec is one aggregate of a query.
type aggSpec struct {
	kind aggKind
	arg  expr    // nil for COUNT(*)
	q    float64 // quantile for aggPercentile
	text string  // SQL text, for messages
}

// aggState is the running state of one aggregate in one window and group.
// Only the fields its kind needs are used.
type aggState struct {
	n   int64   // values seen (COUNT, AVG)
	sum float64 // SUM, AVG
	ext Value   // MIN, MAX
	hll *hyperloglog.Sketch
	dd  *ddsketch.DDSketch
}

// skipReason names why a value was left out of an aggregate; "" if it was
// used or was a NULL that SQL ignores.
type skipReason string

const (
	skipNone      skipReason = ""
	skipWrongType skipReason = "wrong_type"
	skipMissing   skipReason = "missing_field"
)

// add folds one record into the state.
func (s *aggState) add(a *aggSpec, c *evalCtx, keyBuf []byte) ([]byte, skipReason) {
	if a.kind == aggCountStar {
		s.n++
		return keyBuf, skipNone
	}
	v := a.arg.eval(c)
	if v.K == Null {
		if f, isField := a.arg.(field); isField && c.doc != nil && c.doc.Get(f.path...) == nil {
			return keyBuf, skipMissing // absent; an explicit null is ignored, as SQL does
		}
		return keyBuf, skipNone
	}
	switch a.kind {
	case aggCount:
		s.n++
	case aggSum, aggAvg:
		f, ok := v.num()
		if !ok || v.K == Bool {
			return keyBuf, skipWrongType
		}
		s.n++
		s.sum += f
	case aggMin, aggMax:
		if s.n == 0 {
			s.ext = v
		} else if n, ok := compare(v, s.ext); !ok {
			return keyBuf, skipWrongType
		} else if (a.kind == aggMin && n < 0) || (a.kind == aggMax && n > 0) {
			s.ext = v
		}
		s.n++
	case aggDistinct:
		if s.hll == nil {
			s.hll = hyperloglog.New14()
		}
		keyBuf = v.appendKey(keyBuf[:0])
		s.hll.Insert(keyBuf)
		s.n++
	case aggPercentile:
		f, ok := v.num()
		if !ok || v.K == Bool || math.IsNaN(f) || math.IsInf(f, 0) {
			return keyBuf, skipWrongType
		}
		if s.dd == nil {
			s.dd, _ = ddsketch.NewDefaultDDSketch(percentileAccuracy)
		}
		if err := s.dd.Add(f); err != nil {
			return keyBuf, skipWrongType
		}
		s.n++
	}
	return keyBuf, skipNone
}

// merge folds o into s (session windows that grow together).
func (s *aggState) merge(a *aggSpec, o *aggState) {
	switch a.kind {
	case aggMin, aggMax:
		if o.n > 0 {
			if s.n == 0 {
				s.ext = o.ext
			} else if n, ok := compare(o.ext, s.ext); ok && ((a.kind == aggMin && n < 0) || (a.kind == aggMax && n > 0)) {
				s.ext = o.ext
			}
		}
	case aggDistinct:
		if o.hll != nil {
			if s.hll == nil {
				s.hll = o.hll.Clone()
			} else {
				_ = s.hll.Merge(o.hll)
			}
		}
	case aggPercentile:
		if o.dd != nil {
			if s.dd == nil {
				s.dd = o.dd.Copy()
			} else {
				_ = s.dd.MergeWith(o.dd)
			}
		}
	}
	s.n += o.n
	s.sum += o.sum
}

// result is the aggregate's value at window close. COUNT of nothing is 0;
// the others are NULL over no values, as in SQL.
func (s *aggState) result(a *aggSpec) Value {
	switch a.kind {
	case aggCountStar, aggCount:
		return numV(float64(s.n))
	}
	if s.n == 0 {
		return nullV
	}
	switch a.kind {
	case aggSum:
		return numV(s.sum)
	case aggAvg:
		return numV(s.sum / float64(s.n))
	case aggMin, aggMax:
		return s.ext
	case aggDistinct:
		return numV(float64(s.hll.Estimate()))
	case aggPercentile:
		q, err := s.dd.GetValueAtQuantile(a.q)
		if err != nil {
			return nullV
		}
		return numV(q)
	}
	return nullV
}

// aggSnapshot is the durable form of an aggState.
type aggSnapshot struct {
	N   int64  `json:"n,omitempty"`
	Sum uint64 `json:"sum,omitempty"` // float64 bits, exact across restarts
	Ext *Value `json:"ext,omitempty"`
	HLL []byte `json:"hll,omitempty"`
	DD  []byte `json:"dd,omitempty"`
}

func (s *aggState) snapshot() (aggSnapshot, error) {
	out := aggSnapshot{N: s.n, Sum: math.Float64bits(s.sum)}
	if s.ext.K != Null {
		v := s.ext
		out.Ext = &v
	}
	if s.hll != nil {
		b, err := s.hll.MarshalBinary()
		if err != nil {
			return out, fmt.Errorf("snapshot distinct: %w", err)
		}
		out.HLL = b
	}
	if s.dd != nil {
		s.dd.Encode(&out.DD, false)
	}
	return out, nil
}

func restoreAgg(a aggSnapshot) (aggState, error) {
	s := aggState{n: a.N, sum: math.Float64frombits(a.Sum)}
	if a.Ext != nil {
		s.ext = *a.Ext
	}
	if a.HLL != nil {
		s.hll = hyperloglog.New14()
		if err := s.hll.UnmarshalBinary(a.HLL); err != nil {
			return s, fmt.Errorf("restore distinct: %w", err)
		}
	}
	if a.DD != nil {
		dd, err := ddsketch.DecodeDDSketch(a.DD, store.DefaultProvider, nil)
		if err != nil {
			return s, fmt.Errorf("restore percentile: %w", err)
		}
		s.dd = dd
	}
	return s, nil
}

// putInt64 is a small helper for binary keys.
func putInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v))
}
