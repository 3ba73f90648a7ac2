package testutil

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// KinesisOption changes one setting of a KinesisClient.
type KinesisOption func(*kinesis.Options)

// KinesisClient is the real aws-sdk-go-v2 Kinesis client for the service at
// endpoint (a URL, or host:port for plain http). Unless an option says
// otherwise it signs for region us-east-1 with the static keys
// AKIDTEST/secret and retries only the SDK's own connection race
// (SDKRaceRetryer), so that every answer of the gateway reaches the test
// as it came.
func KinesisClient(endpoint string, opts ...KinesisOption) *kinesis.Client {
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	o := kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		Retryer:      SDKRaceRetryer(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	return kinesis.New(o)
}

// KinesisRegion makes the client sign for region.
func KinesisRegion(region string) KinesisOption {
	return func(o *kinesis.Options) { o.Region = region }
}

// KinesisKeys makes the client sign with keyID and secret.
func KinesisKeys(keyID, secret string) KinesisOption {
	return func(o *kinesis.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(keyID, secret, "")
	}
}

// KinesisSDKRetries gives the client the SDK's own standard retryer, as
// an application would have it, making up to attempts attempts per call:
// 0 keeps the SDK's default (3), 1 means no retries at all.
func KinesisSDKRetries(attempts int) KinesisOption {
	return func(o *kinesis.Options) {
		o.Retryer = nil
		o.RetryMaxAttempts = attempts
	}
}

// KinesisHTTPClient sends the client's requests through c (a timeout, a
// dialer that stalls connections).
func KinesisHTTPClient(c kinesis.HTTPClient) KinesisOption {
	return func(o *kinesis.Options) { o.HTTPClient = c }
}
