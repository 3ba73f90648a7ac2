package delivery

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the delivery streams' Prometheus metrics, named after
// Firehose's CloudWatch metrics:
//
//	kaiten_firehose_incoming_records_total        IncomingRecords (read from the source stream)
//	kaiten_firehose_incoming_bytes_total          IncomingBytes
//	kaiten_firehose_delivery_records_total        DeliveryToS3.Records, DeliveryToHttpEndpoint.Records, ...
//	kaiten_firehose_delivery_bytes_total          DeliveryToS3.Bytes, ... (bytes sent, after compression)
//	kaiten_firehose_delivery_success_total        DeliveryToS3.Success as counts: attempts that succeeded
//	kaiten_firehose_delivery_failures_total       attempts that failed (DeliveryToS3.Success's other side)
//	kaiten_firehose_delivery_data_freshness_seconds  DeliveryToS3.DataFreshness: age of the oldest undelivered record
//	kaiten_firehose_backlog_records               records in the source stream not yet delivered
//	kaiten_firehose_online                        1 while the destination accepts deliveries
//	kaiten_firehose_processing_records_total      SucceedProcessing.Records / Dropped / ProcessingFailed, by result
//	kaiten_firehose_error_output_records_total    records sent to the error output, by error code
//
// Every metric has the label delivery_stream; delivery metrics also have
// destination (s3, http_endpoint, kinesis, local).
type Metrics struct {
	IncomingRecords  *prometheus.CounterVec
	IncomingBytes    *prometheus.CounterVec
	DeliveryRecords  *prometheus.CounterVec
	DeliveryBytes    *prometheus.CounterVec
	DeliverySuccess  *prometheus.CounterVec
	DeliveryFailures *prometheus.CounterVec
	DataFreshness    *prometheus.GaugeVec
	BacklogRecords   *prometheus.GaugeVec
	Online           *prometheus.GaugeVec
	Processing       *prometheus.CounterVec
	ErrorOutput      *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered). Create one Metrics per registry and share it among the
// delivery streams.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	ds := []string{"delivery_stream"}
	dd := []string{"delivery_stream", "destination"}
	c := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kaiten", Subsystem: "firehose", Name: name, Help: help}, labels)
	}
	g := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "kaiten", Subsystem: "firehose", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		IncomingRecords:  c("incoming_records_total", "Records read from the source stream (Firehose IncomingRecords).", ds),
		IncomingBytes:    c("incoming_bytes_total", "Bytes read from the source stream (Firehose IncomingBytes).", ds),
		DeliveryRecords:  c("delivery_records_total", "Records delivered (Firehose DeliveryToS3.Records and friends).", dd),
		DeliveryBytes:    c("delivery_bytes_total", "Bytes delivered after encoding (Firehose DeliveryToS3.Bytes and friends).", dd),
		DeliverySuccess:  c("delivery_success_total", "Delivery attempts that the destination acknowledged (Firehose DeliveryToS3.Success).", dd),
		DeliveryFailures: c("delivery_failures_total", "Delivery attempts that failed and will be retried or sent to the error output.", dd),
		DataFreshness:    g("delivery_data_freshness_seconds", "Age of the oldest record not yet delivered (Firehose DeliveryToS3.DataFreshness).", dd),
		BacklogRecords:   g("backlog_records", "Records in the source stream not yet delivered.", dd),
		Online:           g("online", "1 while the destination accepts deliveries, 0 while it fails.", dd),
		Processing:       c("processing_records_total", "Records by transform result: Ok, Dropped, ProcessingFailed (Firehose SucceedProcessing.Records).", []string{"delivery_stream", "result"}),
		ErrorOutput:      c("error_output_records_total", "Records sent to the error output, by error code.", []string{"delivery_stream", "code"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.IncomingRecords, m.IncomingBytes, m.DeliveryRecords, m.DeliveryBytes,
			m.DeliverySuccess, m.DeliveryFailures, m.DataFreshness, m.BacklogRecords, m.Online, m.Processing, m.ErrorOutput} {
			if err := reg.Register(col); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					continue
				}
				return nil, err
			}
		}
	}
	return m, nil
}
