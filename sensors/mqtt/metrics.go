package mqtt

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series (prefix kaiten_mqtt_) plus plain
// counters for the status board. Safe for concurrent use.
type metrics struct {
	received     prometheus.Counter
	stored       *prometheus.CounterVec
	deadlettered *prometheus.CounterVec
	redelivered  prometheus.Counter
	duplicates   prometheus.Counter
	reconnects   prometheus.Counter
	retries      prometheus.Counter
	connected    prometheus.Gauge
	appendSecs   prometheus.Histogram
	batchSize    prometheus.Histogram

	nReceived, nStored, nDead, nRedelivered, nDup, nReconnects atomic.Int64
	isConnected, isSubscribed                                  atomic.Bool
	lastMessage                                                atomic.Int64 // unix nanos
	mu                                                         sync.Mutex
	lastError                                                  string
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_mqtt_received_total",
			Help: "MQTT messages received for ingest (redeliveries included)."}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_mqtt_stored_total",
			Help: "MQTT messages durably appended to their routed stream."}, []string{"stream"}),
		deadlettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kaiten_mqtt_deadletter_total",
			Help: "MQTT messages appended to the dead-letter stream, by reason."}, []string{"reason"}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_mqtt_redelivered_total",
			Help: "MQTT messages received with the DUP flag (broker redelivery)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_mqtt_duplicates_total",
			Help: "Messages identical (topic and payload) to one of the last 8192 this process stored: redeliveries, stored again (at-least-once)."}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_mqtt_reconnects_total",
			Help: "Connections to the external broker lost and retried."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "kaiten_mqtt_append_retries_total",
			Help: "Append rounds retried after a retriable store error (full, throttled, storage)."}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kaiten_mqtt_connected",
			Help: "1 while connected to the broker (always 1 with the embedded broker)."}),
		appendSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kaiten_mqtt_append_seconds",
			Help: "Time of one durable append round.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kaiten_mqtt_batch_records",
			Help: "Messages per append round.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.received, m.stored, m.deadlettered, m.redelivered, m.duplicates,
			m.reconnects, m.retries, m.connected, m.appendSecs, m.batchSize} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) setConnected(ok bool) {
	m.isConnected.Store(ok)
	if !ok {
		m.isSubscribed.Store(false)
	}
	if ok {
		m.connected.Set(1)
	} else {
		m.connected.Set(0)
	}
}

func (m *metrics) setError(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.lastError = ""
	} else {
		m.lastError = err.Error()
	}
}

// Status is what the "mqtt" entry of the status board shows.
type Status struct {
	Mode      string `json:"mode"` // "embedded" or "external"
	Broker    string `json:"broker"`
	Connected bool   `json:"connected"`
	// Subscribed: the routes' subscriptions are in place (SUBACK received
	// on this connection; always true with the embedded broker).
	Subscribed   bool      `json:"subscribed"`
	Received     int64     `json:"received"`
	Stored       int64     `json:"stored"`
	DeadLettered int64     `json:"deadlettered"`
	Redelivered  int64     `json:"redelivered"`
	Duplicates   int64     `json:"duplicates"`
	Reconnects   int64     `json:"reconnects"`
	LastMessage  time.Time `json:"last_message,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
}

func (m *metrics) status() Status {
	s := Status{Connected: m.isConnected.Load(), Subscribed: m.isSubscribed.Load(), Received: m.nReceived.Load(), Stored: m.nStored.Load(),
		DeadLettered: m.nDead.Load(), Redelivered: m.nRedelivered.Load(), Duplicates: m.nDup.Load(),
		Reconnects: m.nReconnects.Load()}
	if t := m.lastMessage.Load(); t != 0 {
		s.LastMessage = time.Unix(0, t).UTC()
	}
	m.mu.Lock()
	s.LastError = m.lastError
	m.mu.Unlock()
	return s
}
