// Package kinesisapi serves the Amazon Kinesis Data Streams wire protocol
// over the gateway's stream store, so that existing Kinesis producers and
// consumers (the AWS SDKs, the AWS CLI, the KPL and KCL) work unchanged
// against the gateway: point their endpoint at it.
//
//	aws --endpoint-url http://127.0.0.1:8080 kinesis list-streams
//
// # Protocol
//
// Every operation is POST / with X-Amz-Target: Kinesis_20131202.<Operation>.
// Bodies are JSON 1.1 (application/x-amz-json-1.1: blobs in base64,
// timestamps as epoch seconds) or CBOR (application/x-amz-cbor-1.1, which
// the Java SDK v2 and the KCL send: blobs as byte strings, timestamps as
// tag 1 around epoch milliseconds); the answer uses the request's encoding.
// Server.Register routes only POST / and OPTIONS / (CORS preflight), so
// GET / stays free for the dashboard.
//
// Operations: CreateStream, DeleteStream, DescribeStream,
// DescribeStreamSummary, ListStreams, ListShards (NextToken, ShardFilter),
// PutRecord, PutRecords, GetShardIterator, GetRecords, SplitShard,
// MergeShards, UpdateShardCount, Increase/DecreaseStreamRetentionPeriod,
// AddTagsToStream, RemoveTagsFromStream, ListTagsForStream, and for
// enhanced fan-out Register/Describe/List/DeregisterStreamConsumer and
// SubscribeToShard (an AWS event stream, application/vnd.amazon.eventstream,
// open for up to 5 minutes). StreamARN is accepted wherever StreamName is.
// Registered consumers outlive a restart, as in Kinesis (Options.DataDir:
// the file kinesis-consumers.json, replaced atomically on every change)
// and go with their stream when it is deleted.
//
// Request bodies are capped (kinesis.max_body_bytes, 8 MiB) and so is the
// sum of the bodies being handled at once (kinesis.max_inflight_bytes,
// 32 MiB): past it, requests wait their turn.
//
// Answers carry what AWS returns and nothing more: absent members are
// omitted, never null. Every answer has x-amzn-RequestId (a UUID) and
// x-amz-id-2. Errors are AWS-shaped, {"__type": ..., "message": ...} with
// HTTP 400 (413 for a body over kinesis.max_body_bytes, 500 for
// InternalFailureException): store errors map to ResourceNotFound,
// ResourceInUse, InvalidArgument, LimitExceeded,
// ProvisionedThroughputExceeded and ExpiredIterator exceptions; request
// checks answer ValidationException with AWS's constraint messages; a body
// that does not fit the operation's shape is a SerializationException. The
// Kinesis rules the store does not apply are applied here: retention of
// 24 to 8,760 hours through the API, UpdateShardCount within half and
// double the open shards, the PutRecords 5 MB total.
//
// PutRecords reports each record's outcome; a failed record never blocks
// the others. A record refused because a storage cap is reached gets
// ErrorCode InternalFailure (retriable), not
// ProvisionedThroughputExceededException: a full disk is not a throughput
// limit, and autoscalers read throttling as "add shards". Records are
// durable (fsynced by the store) before the 200 answer.
//
// Clients built with the Go SDK (aws-sdk-go-v2) should keep its retries:
// when an answer comes back before net/http's writer goroutine has finished
// with the request (easily so on a loaded host with the gateway on the same
// machine), the SDK's closed request body makes net/http close the
// connection under the response, and the call fails with "use of closed
// network connection". The SDK's default retryer retries that error; with
// RetryMaxAttempts 1 it reaches the caller. The gateway's answer was whole.
//
// # Authentication
//
// Without access keys in the config, requests are accepted signed or not,
// but only from loopback clients (kinesis.auth.allow_remote_unsigned opens
// the API to a trusted LAN). With kinesis.auth.access_keys, every request
// must carry a valid AWS Signature Version 4 of one of them, in the
// Authorization header or as a presigned query, scoped to the service
// kinesis and to kinesis.auth.region (default us-east-1); bad, expired,
// not-yet-valid and wrongly scoped signatures get AWS's errors. Secrets are never logged.
//
// # Metrics
//
// Prometheus metrics named after CloudWatch's Kinesis metrics:
// kaiten_kinesis_incoming_records_total, ..._incoming_bytes_total,
// ..._put_record_success_total, ..._put_records_success_total,
// ..._put_records_{total,successful,failed,throttled}_records_total,
// ..._write_provisioned_throughput_exceeded_total,
// ..._get_records_{success,records,bytes}_total,
// ..._get_records_iterator_age_milliseconds,
// ..._read_provisioned_throughput_exceeded_total,
// ..._subscribe_to_shard_event_records_total, plus requests_total by
// operation and outcome and request_duration_seconds by operation.
//
// # Concurrency
//
// A Server is safe for concurrent use; each request runs on its HTTP
// server goroutine. CloseSubscriptions ends open SubscribeToShard streams at
// shutdown.
package kinesisapi
