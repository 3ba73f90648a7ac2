// Package awscfg holds the keys that the destinations built on the AWS SDK
// (s3, kinesis) share: where the service is, which region requests are
// signed for, the static keys, and the request timeout.
package awscfg

import (
	"os"
	"time"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
)

// DefaultRegion is the SigV4 region of a zero Access.Region.
const DefaultRegion = "us-east-1"

// Access is how a destination reaches its AWS-compatible service; a
// destination's Config embeds it inline, so its keys sit beside the
// destination's own. Zero values mean the defaults.
type Access struct {
	// Endpoint is the service URL (e.g. http://127.0.0.1:7070); empty
	// means AWS.
	Endpoint string `yaml:"endpoint"`
	// Region for SigV4. Default us-east-1.
	Region string `yaml:"region"`
	// AccessKeyID and SecretAccessKey sign requests (SigV4); empty means
	// the environment's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	// SessionToken goes with temporary keys; not a YAML key.
	SessionToken string `yaml:"-"`
	// Timeout bounds one request; the destination sets the default.
	Timeout gconfig.Duration `yaml:"timeout"`
}

// WithDefaults returns a with the default region and, for a zero Timeout,
// timeout.
func (a Access) WithDefaults(timeout time.Duration) Access {
	if a.Region == "" {
		a.Region = DefaultRegion
	}
	if a.Timeout.Duration <= 0 {
		a.Timeout.Duration = timeout
	}
	return a
}

// Keys returns the static credentials to sign with: the configured ones,
// or else the environment's (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// AWS_SESSION_TOKEN). All three are empty when neither has keys.
func (a Access) Keys() (id, secret, token string) {
	if a.AccessKeyID != "" || a.SecretAccessKey != "" {
		return a.AccessKeyID, a.SecretAccessKey, a.SessionToken
	}
	return os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
}
