package stream

import "sort"

// logRecovery says at INFO what Open found and checked, so that an
// operator reading the journal after a restart (a kill -9 or a power cut
// included) sees what was recovered: one line per stream (shards open and
// closed, records and bytes stored, the newest acknowledged sequence
// counter per shard), then one summary line (streams, shards, records,
// how many shard high-water marks were checked, how many shard tails were
// read back, as verifyTails counted them). It runs once the checks passed (or were overridden by
// accept_data_loss, which logs the damage itself).
func (s *Store) logRecovery(recorded map[hwmKey]uint64, tails int) {
	s.mu.RLock()
	sts := make([]*streamState, 0, len(s.streams))
	for _, st := range s.streams {
		sts = append(sts, st)
	}
	s.mu.RUnlock()
	sort.Slice(sts, func(i, j int) bool { return sts[i].name < sts[j].name })
	var open, closed int
	var records, bytes int64
	for _, st := range sts {
		var o, c int
		newest := map[string]uint64{}
		for _, sm := range st.meta.Load().Shards {
			sh := st.shard(sm.Index)
			if sh == nil {
				continue // dropped after its retention
			}
			if sm.Closed {
				c++
			} else {
				o++
			}
			if last := sh.last.Load(); last > 0 {
				newest[sm.id()] = last
			}
		}
		open, closed = open+o, closed+c
		records, bytes = records+st.records.Load(), bytes+st.bytes.Load()
		s.log.Info("store: stream opened", "stream", st.name, "open_shards", o, "closed_shards", c,
			"records", st.records.Load(), "bytes", st.bytes.Load(), "newest_counter_per_shard", newest)
	}
	hwm := "checked"
	if len(recorded) == 0 {
		hwm = "none recorded (no record acknowledged yet)"
	}
	s.log.Info("store: opened", "dir", s.opts.Dir, "streams", len(sts), "open_shards", open, "closed_shards", closed,
		"records", records, "bytes", bytes, "high_water_marks", len(recorded), "high_water", hwm, "tails_read_back", tails)
}
