package kinesisapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// AWS exception names, as they appear in the __type field.
const (
	ExResourceNotFound   = "ResourceNotFoundException"
	ExResourceInUse      = "ResourceInUseException"
	ExInvalidArgument    = "InvalidArgumentException"
	ExLimitExceeded      = "LimitExceededException"
	ExThroughputExceeded = "ProvisionedThroughputExceededException"
	ExExpiredIterator    = "ExpiredIteratorException"
	ExExpiredNextToken   = "ExpiredNextTokenException"
	ExValidation         = "ValidationException"
	ExSerialization      = "SerializationException"
	ExUnknownOperation   = "UnknownOperationException"
	ExInternalFailure    = "InternalFailureException"
	// recordInternalFailure is PutRecords' per-record ErrorCode (AWS uses
	// the short name there).
	recordInternalFailure   = "InternalFailure"
	ExMissingAuthToken      = "MissingAuthenticationTokenException"
	ExIncompleteSignature   = "IncompleteSignatureException"
	ExInvalidSignature      = "InvalidSignatureException"
	ExUnrecognizedClient    = "UnrecognizedClientException"
	ExAccessDenied          = "AccessDeniedException"
	ExRequestEntityTooLarge = "RequestEntityTooLargeException"
)

// apiError is an error answered to the client as AWS shapes it:
// {"__type": Type, "message": Message} with HTTP Status.
type apiError struct {
	Status  int
	Type    string
	Message string
}

func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func newErr(typ, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// errBody is the wire shape of an error. message is omitted when empty, as
// AWS does for UnknownOperationException.
type errBody struct {
	Type    string `json:"__type"`
	Message string `json:"message,omitempty"`
}

// storeMessage strips the "stream: " prefix of the store's errors, which
// means nothing to a Kinesis client.
func storeMessage(err error) string {
	msg := err.Error()
	for _, p := range []string{"stream: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// toAPIError maps an error from a handler or the store to what the client
// gets. Errors that are not the client's fault become InternalFailure (500).
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	typ, status := ExInternalFailure, http.StatusInternalServerError
	switch {
	case errors.Is(err, stream.ErrStreamNotFound), errors.Is(err, stream.ErrShardNotFound):
		typ, status = ExResourceNotFound, http.StatusBadRequest
	case errors.Is(err, stream.ErrStreamExists), errors.Is(err, stream.ErrStreamBusy):
		typ, status = ExResourceInUse, http.StatusBadRequest
	case errors.Is(err, stream.ErrInvalidArgument), errors.Is(err, stream.ErrInvalidIterator):
		typ, status = ExInvalidArgument, http.StatusBadRequest
	case errors.Is(err, stream.ErrLimitExceeded):
		typ, status = ExLimitExceeded, http.StatusBadRequest
	case errors.Is(err, stream.ErrThroughputExceeded):
		typ, status = ExThroughputExceeded, http.StatusBadRequest
	case errors.Is(err, stream.ErrIteratorExpired):
		typ, status = ExExpiredIterator, http.StatusBadRequest
	case errors.Is(err, stream.ErrFull):
		// Retriable: the SDKs retry 5xx InternalFailure with backoff.
		return &apiError{Status: http.StatusInternalServerError, Type: ExInternalFailure,
			Message: "The gateway's storage cap is reached; retry later (" + storeMessage(err) + ")."}
	case errors.Is(err, stream.ErrClosed):
		typ, status = "ServiceUnavailable", http.StatusServiceUnavailable
	}
	return &apiError{Status: status, Type: typ, Message: storeMessage(err)}
}

// recordErrorCode is PutRecords' per-record ErrorCode for a failed record.
//
// ErrFull becomes InternalFailure, not ProvisionedThroughputExceededException:
// both are retried by the SDKs and the KPL, but a full disk is not a
// throughput limit that clears within a second, and autoscalers and the
// WriteProvisionedThroughputExceeded metric would read a throttle as "add
// shards", which would only make a full gateway worse.
func recordErrorCode(err error) (code, msg string) {
	switch {
	case errors.Is(err, stream.ErrThroughputExceeded):
		return ExThroughputExceeded, "Rate exceeded for shard: " + storeMessage(err)
	case errors.Is(err, stream.ErrFull):
		return recordInternalFailure, "Storage cap reached on the gateway; retry later (" + storeMessage(err) + ")"
	case errors.Is(err, stream.ErrInvalidArgument):
		return ExInvalidArgument, storeMessage(err)
	}
	return recordInternalFailure, "Internal service failure."
}
