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

// SDKRaceRetryer is a retryer for test clients that must see every error
// the gateway answers: it retries SDKConnRace, at once and at most twice,
// and nothing else.
func SDKRaceRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.RateLimiter = ratelimit.None
		o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		o.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			return aws.BoolTernary(SDKConnRace(err))
		})}
		o.Timeouts = nil
	})
}
