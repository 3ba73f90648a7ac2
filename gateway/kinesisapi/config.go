package kinesisapi

import (
	_ "embed"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/config"
)

// SampleYAML is the commented kinesis section with every key and its
// default, for deploy/kaiten.example.yaml.
//
//go:embed sample.yaml
var SampleYAML string

// Defaults for zero config values.
const (
	DefaultMaxBodyBytes  = 8 << 20
	DefaultMaxInflight   = 32 << 20
	DefaultMaxClockSkew  = 5 * time.Minute
	DefaultListLimit     = 100
	DefaultListShardsMax = 1000
	DefaultRegion        = "us-east-1"
)

// Config is the kinesis section of the gateway's YAML file. The zero value
// of every field means its default.
type Config struct {
	// Disabled turns the API off (no handler on POST /). Default false.
	Disabled bool `yaml:"disabled"`
	// MaxBodyBytes caps a request body; larger requests get HTTP 413.
	// Default 8 MiB, enough for a full PutRecords (5 MiB of data, base64).
	MaxBodyBytes config.ByteSize `yaml:"max_body_bytes"`
	// MaxInflightBytes caps the request bodies being handled at once; a
	// request that would pass it waits for others to finish, so a burst of
	// large PutRecords cannot push a small board out of memory.
	// Default 32 MiB.
	MaxInflightBytes config.ByteSize `yaml:"max_inflight_bytes"`
	// CORSOrigins are the browser origins allowed to call the API; "*"
	// allows any. Default ["*"].
	CORSOrigins []string   `yaml:"cors_origins"`
	Auth        AuthConfig `yaml:"auth"`
}

// AuthConfig is the kinesis.auth section.
type AuthConfig struct {
	// AccessKeys, when not empty, make every request carry a valid AWS
	// Signature Version 4 made with one of these keys (header or query
	// form). When empty, requests are accepted unsigned or signed with any
	// key, but only from loopback clients unless AllowRemoteUnsigned is set.
	AccessKeys []AccessKey `yaml:"access_keys"`
	// AllowRemoteUnsigned accepts unauthenticated requests from any address
	// when AccessKeys is empty (a trusted shop LAN). Default false.
	AllowRemoteUnsigned bool `yaml:"allow_remote_unsigned"`
	// MaxClockSkew is how far a signature's X-Amz-Date may be from the
	// gateway's clock. Default 5m, as AWS. A Pi without a real-time clock
	// may need more until NTP has synced.
	MaxClockSkew config.Duration `yaml:"max_clock_skew"`
	// Region is the region signatures must be scoped to (the client's
	// configured region, e.g. AWS_REGION); a signature for another region
	// is refused as AWS refuses it. Checked only with AccessKeys. Default
	// us-east-1 (the daemon defaults it to store.region).
	Region string `yaml:"region"`
}

// AccessKey is one accepted AWS credential pair. The secret is never logged.
type AccessKey struct {
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
}

// String hides the secret so that a key printed by mistake leaks nothing.
func (k AccessKey) String() string { return k.AccessKeyID + ":<secret>" }

var (
	accessKeyID = regexp.MustCompile(`^[A-Za-z0-9]{3,128}$`)
	regionName  = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// withDefaults returns c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflight
	}
	if c.CORSOrigins == nil {
		c.CORSOrigins = []string{"*"}
	}
	if c.Auth.MaxClockSkew.Duration == 0 {
		c.Auth.MaxClockSkew.Duration = DefaultMaxClockSkew
	}
	if c.Auth.Region == "" {
		c.Auth.Region = DefaultRegion
	}
	return c
}

// Validate checks the section; errors name the key.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 || (c.MaxBodyBytes > 0 && c.MaxBodyBytes < 64<<10) || c.MaxBodyBytes > 64<<20 {
		errs = append(errs, config.Errorf("kinesis.max_body_bytes", "%d: want 64KiB to 64MiB", int64(c.MaxBodyBytes)))
	}
	if c.MaxInflightBytes < 0 || (c.MaxInflightBytes > 0 && c.MaxInflightBytes < 64<<10) || c.MaxInflightBytes > 1<<30 {
		errs = append(errs, config.Errorf("kinesis.max_inflight_bytes", "%d: want 64KiB to 1GiB", int64(c.MaxInflightBytes)))
	}
	for i, o := range c.CORSOrigins {
		if o == "" {
			errs = append(errs, config.Errorf(fmt.Sprintf("kinesis.cors_origins[%d]", i), "must not be empty"))
		}
	}
	if d := c.Auth.MaxClockSkew.Duration; d < 0 || d > 7*24*time.Hour {
		errs = append(errs, config.Errorf("kinesis.auth.max_clock_skew", "%s: want 1s to 168h", d))
	}
	if r := c.Auth.Region; r != "" && !regionName.MatchString(r) {
		errs = append(errs, config.Errorf("kinesis.auth.region", "%q: want a region name such as us-east-1 (lowercase letters, digits and hyphens)", r))
	}
	seen := map[string]bool{}
	for i, k := range c.Auth.AccessKeys {
		key := fmt.Sprintf("kinesis.auth.access_keys[%d]", i)
		if !accessKeyID.MatchString(k.AccessKeyID) {
			errs = append(errs, config.Errorf(key+".access_key_id", "want 3-128 letters and digits"))
		}
		if seen[k.AccessKeyID] {
			errs = append(errs, config.Errorf(key+".access_key_id", "%q is listed twice", k.AccessKeyID))
		}
		seen[k.AccessKeyID] = true
		if k.SecretAccessKey == "" {
			errs = append(errs, config.Errorf(key+".secret_access_key", "must not be empty"))
		}
	}
	return errors.Join(errs...)
}
