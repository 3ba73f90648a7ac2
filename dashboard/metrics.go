package dashboard

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics exports what the views show, except what the store's own
// collector already exports (kaiten_stream_stored_bytes, max_bytes,
// disk_bytes, incoming_records_total). The hub's own counters are plain
// vectors; the view figures are read from the last pushed views at scrape
// time, so a scrape and the page agree.
type metrics struct {
	s         *Server
	dropped   *prometheus.CounterVec
	sent      prometheus.Counter
	sentBytes prometheus.Counter
	denied    prometheus.Counter

	clients, events, onBelt, takeRate, makeNext, lanePassed, sensorAge, sensorSilent,
	streamRate, streamRetention, deadTotal, deadWindow *prometheus.Desc
}

func newMetrics(s *Server) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("kaiten_dashboard_"+name, help, labels, nil)
	}
	return &metrics{
		s: s,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_dashboard_clients_dropped_total",
			Help: "Websocket clients dropped, by reason: slow (send queue full), write (write failed), closed."}, []string{"reason"}),
		sent:      prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_dashboard_messages_sent_total", Help: "Websocket messages written to clients."}),
		sentBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_dashboard_sent_bytes_total", Help: "Websocket message bytes written to clients."}),
		denied:    prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_dashboard_unauthorized_total", Help: "Dashboard requests refused for a missing or wrong token."}),

		clients:         d("clients", "Websocket clients attached now."),
		events:          d("plate_events_total", "Plate events seen live since start, by event (placed, passed, taken) and plate type.", "event", "plate_type"),
		onBelt:          d("plates_on_belt", "Plates on the belt now, by plate type.", "plate_type"),
		takeRate:        d("take_rate_per_minute", "Plates taken per minute over the rate window, by plate type.", "plate_type"),
		makeNext:        d("make_next_plates", "Plates the kitchen should make now to cover the take rate, by plate type.", "plate_type"),
		lanePassed:      d("lane_passed_per_minute", "Plates passing lane sensors per minute (last 5 minutes), by lane.", "lane"),
		sensorAge:       d("sensor_last_seen_age_seconds", "Seconds since a sensor was last heard (heartbeat or event).", "sensor", "lane"),
		sensorSilent:    d("sensor_silent", "1 if the sensor has been silent longer than sensor_silent_after.", "sensor", "lane"),
		streamRate:      d("incoming_records_per_second", "Records appended per second over the last push interval, by stream and shard.", "stream", "shard"),
		streamRetention: d("stream_retention_seconds", "Retention period, by stream.", "stream"),
		deadTotal:       d("deadletters_total", "Dead letters seen live since start, by source.", "source"),
		deadWindow:      d("deadletters_window", "Dead letters within the history window, by source.", "source"),
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.dropped.Describe(ch)
	m.sent.Describe(ch)
	m.sentBytes.Describe(ch)
	m.denied.Describe(ch)
	for _, d := range []*prometheus.Desc{m.clients, m.events, m.onBelt, m.takeRate, m.makeNext, m.lanePassed,
		m.sensorAge, m.sensorSilent, m.streamRate, m.streamRetention, m.deadTotal, m.deadWindow} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.dropped.Collect(ch)
	m.sent.Collect(ch)
	m.sentBytes.Collect(ch)
	m.denied.Collect(ch)
	s := m.s
	g := prometheus.GaugeValue
	c := prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(m.clients, g, float64(s.hub.Clients()))
	for k, v := range s.plates.liveCounts() {
		ch <- prometheus.MustNewConstMetric(m.events, c, float64(v), k[0], k[1])
	}
	for k, v := range s.dead.liveCounts() {
		ch <- prometheus.MustNewConstMetric(m.deadTotal, c, float64(v), k)
	}
	s.mu.Lock()
	sv, gv := s.lastStore, s.lastGateway
	s.mu.Unlock()
	for _, t := range sv.Types {
		ch <- prometheus.MustNewConstMetric(m.onBelt, g, float64(t.OnBelt), t.PlateType)
		ch <- prometheus.MustNewConstMetric(m.takeRate, g, t.TakePerMin, t.PlateType)
		ch <- prometheus.MustNewConstMetric(m.makeNext, g, float64(t.Need), t.PlateType)
	}
	for _, l := range sv.Lanes {
		ch <- prometheus.MustNewConstMetric(m.lanePassed, g, l.PassedPerMin, l.Lane)
	}
	for _, se := range sv.Sensors {
		ch <- prometheus.MustNewConstMetric(m.sensorAge, g, se.AgeSec, se.Sensor, se.Lane)
		silent := 0.0
		if se.Silent {
			silent = 1
		}
		ch <- prometheus.MustNewConstMetric(m.sensorSilent, g, silent, se.Sensor, se.Lane)
	}
	for _, st := range gv.Streams {
		for _, sh := range st.Shards {
			ch <- prometheus.MustNewConstMetric(m.streamRate, g, sh.PerSec, st.Name, sh.ShardID)
		}
		ch <- prometheus.MustNewConstMetric(m.streamRetention, g, st.RetentionS, st.Name)
	}
	for src, n := range gv.DeadLetters.LastHour {
		ch <- prometheus.MustNewConstMetric(m.deadWindow, g, float64(n), src)
	}
}
