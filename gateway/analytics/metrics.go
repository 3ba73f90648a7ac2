package analytics

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the per-query Prometheus metrics, labelled by query. One
// Metrics serves every query of a process.
type Metrics struct {
	in, out, late *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	behind, open  *prometheus.GaugeVec
	watermark     *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered, for tests).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_analytics_input_records_total",
			Help: "Records a continuous query read from its source stream."}, []string{"query"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_analytics_output_records_total",
			Help: "Result records (one per window and group) a query wrote to its output stream."}, []string{"query"}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_analytics_late_records_total",
			Help: "Records that arrived after every window they belong to had closed; sent to the late output."}, []string{"query"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_analytics_skipped_total",
			Help: "Records or values a query could not use, by reason (bad_json, bad_event_time, wrong_type, missing_field)."}, []string{"query", "reason"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaiten_analytics_millis_behind_latest",
			Help: "How far the query's reading is behind the newest record of its source stream (largest over shards)."}, []string{"query"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaiten_analytics_open_windows",
			Help: "Open (window, group) pairs held by the query."}, []string{"query"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kaiten_analytics_watermark_seconds",
			Help: "The query's watermark as a Unix time: windows ending at or before it are emitted."}, []string{"query"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.in, m.out, m.late, m.skipped, m.behind, m.open, m.watermark} {
			reg.MustRegister(c)
		}
	}
	return m
}

// forget removes a stopped query's series.
func (m *Metrics) forget(query string) {
	for _, v := range []*prometheus.CounterVec{m.in, m.out, m.late} {
		v.DeleteLabelValues(query)
	}
	m.skipped.DeletePartialMatch(prometheus.Labels{"query": query})
	for _, v := range []*prometheus.GaugeVec{m.behind, m.open, m.watermark} {
		v.DeleteLabelValues(query)
	}
}
