package testutil

import (
	"errors"
	"net"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// SDKConnRace reports the one transport error that is not the gateway's:
// aws-sdk-go-v2's own connection race, where the answer came and net/http
// closed the connection under it on the client's side (a response error
// wrapping net.ErrClosed, "use of closed network connection"). The SDK
// closes the request body once the response headers are in, and net/http's
// writer goroutine, checking the body for extra bytes, takes the error for
// a failed write. Reproduced in gateway/kinesisapi
// TestSDKConnectionRaceIsClientSide; the SDK's default retryer retries it.
func SDKConnRace(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && errors.Is(err, net.ErrClosed)
}

// The race needs the client's writer goroutine to be descheduled at the
// wrong moment, which a loaded machine does several times in a row: retry
// it up to sdkRaceAttempts times, sdkRaceBackoff × attempt apart.
const (
	sdkRaceAttempts = 6
	sdkRaceBackoff  = 50 * time.Millisecond
)

// RetrySDKRace runs fn again while it fails with SDKConnRace (up to six
// attempts in all, backing off a little more each time); any other error,
// or success, is returned at once. For calls that are idempotent, such as
// GetRecords with the same iterator.
func RetrySDKRace(fn func() error) error {
	err := fn()
	for attempt := 1; attempt < sdkRaceAttempts && SDKConnRace(err); attempt++ {
		time.Sleep(time.Duration(attempt) * sdkRaceBackoff)
		err = fn()
	}
	return err
}

// SDKRaceRetryer is a retryer for test clients that must see every error
// the gateway answers: it retries SDKConnRace as RetrySDKRace does, and
// nothing else.
func SDKRaceRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = sdkRaceAttempts
		o.RateLimiter = ratelimit.None
		o.Backoff = retry.BackoffDelayerFunc(func(attempt int, _ error) (time.Duration, error) {
			return time.Duration(attempt) * sdkRaceBackoff, nil
		})
		o.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			return aws.BoolTernary(SDKConnRace(err))
		})}
		o.Timeouts = nil
	})
}
