package kinesisapi

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are named after CloudWatch's Kinesis Data Streams metrics
// (kaiten_kinesis_ + the CloudWatch name in snake case); the help text
// names the CloudWatch metric. Per-stream series carry a stream label, set
// only for streams that exist, so their number stays bounded.
type metrics struct {
	incomingRecords   *prometheus.CounterVec // IncomingRecords
	incomingBytes     *prometheus.CounterVec // IncomingBytes
	putRecordSuccess  *prometheus.CounterVec // PutRecord.Success
	putRecordBytes    *prometheus.CounterVec // PutRecord.Bytes
	putRecordsSuccess *prometheus.CounterVec // PutRecords.Success
	putRecordsTotal   *prometheus.CounterVec // PutRecords.TotalRecords
	putRecordsOK      *prometheus.CounterVec // PutRecords.SuccessfulRecords
	putRecordsFailed  *prometheus.CounterVec // PutRecords.FailedRecords
	putRecordsThrottl *prometheus.CounterVec // PutRecords.ThrottledRecords
	putRecordsBytes   *prometheus.CounterVec // PutRecords.Bytes
	writeThrottled    *prometheus.CounterVec // WriteProvisionedThroughputExceeded
	getRecordsSuccess prometheus.Counter     // GetRecords.Success
	getRecordsRecords prometheus.Counter     // GetRecords.Records
	getRecordsBytes   prometheus.Counter     // GetRecords.Bytes
	iteratorAge       prometheus.Gauge       // GetRecords.IteratorAgeMilliseconds
	readThrottled     prometheus.Counter     // ReadProvisionedThroughputExceeded
	subscribeRecords  prometheus.Counter     // SubscribeToShardEvent.Records
	waiting           prometheus.Gauge       // requests waiting for the in-flight budget
	requests          *prometheus.CounterVec // per operation and outcome
	latency           *prometheus.HistogramVec
}

// forget drops a deleted stream's series.
func (m *metrics) forget(stream string) {
	for _, v := range []*prometheus.CounterVec{m.incomingRecords, m.incomingBytes, m.putRecordSuccess, m.putRecordBytes,
		m.putRecordsSuccess, m.putRecordsTotal, m.putRecordsOK, m.putRecordsFailed, m.putRecordsThrottl, m.putRecordsBytes,
		m.writeThrottled} {
		v.DeleteLabelValues(stream)
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "kaiten_kinesis"
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	}
	m := &metrics{
		incomingRecords:   cv("incoming_records_total", "Records stored through PutRecord and PutRecords (CloudWatch IncomingRecords).", "stream"),
		incomingBytes:     cv("incoming_bytes_total", "Data bytes stored through PutRecord and PutRecords (CloudWatch IncomingBytes).", "stream"),
		putRecordSuccess:  cv("put_record_success_total", "Successful PutRecord operations (CloudWatch PutRecord.Success).", "stream"),
		putRecordBytes:    cv("put_record_bytes_total", "Data bytes stored by PutRecord (CloudWatch PutRecord.Bytes).", "stream"),
		putRecordsSuccess: cv("put_records_success_total", "PutRecords operations in which at least one record succeeded (CloudWatch PutRecords.Success).", "stream"),
		putRecordsTotal:   cv("put_records_total_records_total", "Records sent in PutRecords operations (CloudWatch PutRecords.TotalRecords).", "stream"),
		putRecordsOK:      cv("put_records_successful_records_total", "Records stored by PutRecords (CloudWatch PutRecords.SuccessfulRecords).", "stream"),
		putRecordsFailed:  cv("put_records_failed_records_total", "Records PutRecords refused for an internal reason, such as a full storage cap (CloudWatch PutRecords.FailedRecords).", "stream"),
		putRecordsThrottl: cv("put_records_throttled_records_total", "Records PutRecords refused by the per-shard write limit (CloudWatch PutRecords.ThrottledRecords).", "stream"),
		putRecordsBytes:   cv("put_records_bytes_total", "Data bytes stored by PutRecords (CloudWatch PutRecords.Bytes).", "stream"),
		writeThrottled:    cv("write_provisioned_throughput_exceeded_total", "Records refused by the per-shard write limit (CloudWatch WriteProvisionedThroughputExceeded).", "stream"),
		getRecordsSuccess: c("get_records_success_total", "Successful GetRecords operations (CloudWatch GetRecords.Success)."),
		getRecordsRecords: c("get_records_records_total", "Records returned by GetRecords (CloudWatch GetRecords.Records)."),
		getRecordsBytes:   c("get_records_bytes_total", "Data bytes returned by GetRecords (CloudWatch GetRecords.Bytes)."),
		iteratorAge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "get_records_iterator_age_milliseconds",
			Help: "Age of the last record returned by the latest GetRecords call that returned records (CloudWatch GetRecords.IteratorAgeMilliseconds)."}),
		readThrottled: c("read_provisioned_throughput_exceeded_total", "GetRecords calls refused by a read limit (CloudWatch ReadProvisionedThroughputExceeded)."),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "requests_waiting",
			Help: "Requests waiting because kinesis.max_inflight_bytes of bodies are being handled."}),
		subscribeRecords: c("subscribe_to_shard_event_records_total", "Records pushed by SubscribeToShard (CloudWatch SubscribeToShardEvent.Records)."),
		requests:         cv("requests_total", "API requests by operation and outcome (OK or the AWS exception name).", "operation", "code"),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "request_duration_seconds",
			Help:    "API request latency by operation (CloudWatch PutRecord.Latency, PutRecords.Latency, GetRecords.Latency).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"operation"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.incomingRecords, m.incomingBytes, m.putRecordSuccess, m.putRecordBytes,
		m.putRecordsSuccess, m.putRecordsTotal, m.putRecordsOK, m.putRecordsFailed, m.putRecordsThrottl, m.putRecordsBytes,
		m.writeThrottled, m.getRecordsSuccess, m.getRecordsRecords, m.getRecordsBytes, m.iteratorAge, m.readThrottled, m.subscribeRecords, m.waiting,
		m.requests, m.latency} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("kinesis metrics: %w", err)
		}
	}
	return m, nil
}
