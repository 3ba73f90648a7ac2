package stream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics are the store's own counters; NewCollector exports them with
// the per-stream and per-shard gauges.
type storeMetrics struct {
	commits, commitErrors, rejected, throttled, full, evicted, expired, readRecords prometheus.Counter
	recordsPerCommit, iteratorAge                                                   prometheus.Histogram
}

func (m *storeMetrics) init() {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "kaiten", Subsystem: "stream", Name: name, Help: help})
	}
	m.commits = c("commits_total", "Group commits (one fsync each).")
	m.commitErrors = c("commit_errors_total", "Group commits that failed.")
	m.rejected = c("invalid_records_total", "Records refused for breaking a limit (key length, size, hash key).")
	m.throttled = c("write_provisioned_throughput_exceeded_total", "Records refused by a per-shard write limit (Kinesis WriteProvisionedThroughputExceeded).")
	m.full = c("full_rejections_total", "Records refused because a disk cap was reached and the policy is reject.")
	m.evicted = c("evicted_records_total", "Records deleted by the evict_oldest policy.")
	m.expired = c("expired_records_total", "Records deleted by retention.")
	m.readRecords = c("get_records_records_total", "Records returned by GetRecords (Kinesis GetRecords.Records).")
	m.recordsPerCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kaiten", Subsystem: "stream", Name: "records_per_commit",
		Help: "Records gathered into one group commit.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)})
	m.iteratorAge = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "kaiten", Subsystem: "stream", Name: "get_records_iterator_age_milliseconds",
		Help: "Age of the last record returned by GetRecords (Kinesis GetRecords.IteratorAgeMilliseconds).", Buckets: prometheus.ExponentialBuckets(10, 4, 10)})
}

func (m *storeMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.commits, m.commitErrors, m.rejected, m.throttled, m.full, m.evicted, m.expired, m.readRecords, m.recordsPerCommit, m.iteratorAge}
}

type collector struct {
	s                                                             *Store
	incoming, incomingBytes, bytes, records, maxBytes, diskB, lag *prometheus.Desc
}

// NewCollector returns a Prometheus collector for the store: its counters
// plus, per stream and shard, incoming records and bytes (Kinesis
// IncomingRecords, IncomingBytes), stored bytes and records against caps.
func NewCollector(s *Store) prometheus.Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("kaiten_stream_"+name, help, labels, nil)
	}
	return &collector{s: s,
		incoming:      d("incoming_records_total", "Records appended since start (Kinesis IncomingRecords).", "stream", "shard"),
		incomingBytes: d("incoming_bytes_total", "Data bytes appended since start (Kinesis IncomingBytes).", "stream", "shard"),
		bytes:         d("stored_bytes", "Logical bytes stored (keys plus data).", "stream"),
		records:       d("stored_records", "Records stored.", "stream"),
		maxBytes:      d("max_bytes", "Byte cap (0 = none); stream \"\" is the store-wide cap.", "stream"),
		diskB:         d("disk_bytes", "Badger's size on disk (LSM plus value log)."),
		lag:           d("newest_record_age_seconds", "Age of the newest record per shard.", "stream", "shard"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.s.m.all() {
		m.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{c.incoming, c.incomingBytes, c.bytes, c.records, c.maxBytes, c.diskB, c.lag} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.s.m.all() {
		m.Collect(ch)
	}
	st := c.s.Stats()
	now := c.s.now()
	for _, s := range st.Streams {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes), s.Name)
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(s.Records), s.Name)
		ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(s.MaxBytes), s.Name)
		for _, sh := range s.Shards {
			ch <- prometheus.MustNewConstMetric(c.incoming, prometheus.CounterValue, float64(sh.Incoming), s.Name, sh.ShardID)
			ch <- prometheus.MustNewConstMetric(c.incomingBytes, prometheus.CounterValue, float64(sh.IncomingBytes), s.Name, sh.ShardID)
			if !sh.LastArrival.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, now.Sub(sh.LastArrival).Seconds(), s.Name, sh.ShardID)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.maxBytes, prometheus.GaugeValue, float64(st.MaxBytes), "")
	ch <- prometheus.MustNewConstMetric(c.diskB, prometheus.GaugeValue, float64(st.DiskBytes))
}

// Stats returns a snapshot of sizes and traffic.
func (s *Store) Stats() Stats {
	out := Stats{MaxBytes: s.opts.MaxBytes}
	out.DiskBytes = diskUsage(s.opts.Dir)
	for _, name := range s.ListStreams() {
		st, err := s.lookup(name)
		if err != nil {
			continue
		}
		m := st.meta.Load()
		ss := StreamStats{Name: name, Bytes: st.bytes.Load(), Records: st.records.Load(), MaxBytes: m.MaxBytes,
			Retention: m.Retention, Evicted: st.evicted.Load()}
		for _, sm := range m.Shards {
			sh := st.shard(sm.Index)
			if sh == nil {
				continue
			}
			x := ShardStats{ShardID: sm.id(), Open: !sm.Closed, Incoming: sh.incoming.Load(), IncomingBytes: sh.inBytes.Load()}
			if last := sh.last.Load(); last > 0 {
				ms := sh.lastMs.Load()
				x.LastSequenceNumber = seqNum{created: sh.created, counter: last, put: uint64(ms / 1000), shard: sh.idx}.String()
				x.LastArrival = msTime(ms)
			}
			ss.Shards = append(ss.Shards, x)
		}
		out.Bytes += ss.Bytes
		out.Streams = append(out.Streams, ss)
	}
	return out
}
