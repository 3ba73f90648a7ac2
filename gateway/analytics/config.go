package analytics

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Defaults, used for zero config values.
const (
	DefaultOutput        = stream.NamePlateStats
	DefaultLateOutput    = stream.NameDeadLetter
	DefaultEventLateness = 5 * time.Second
	DefaultSaveInterval  = 10 * time.Second
	DefaultRecent        = 20
	DemoQueryName        = "plates_taken_per_minute"
	DemoQuerySQL         = "SELECT lane, plate_type, COUNT(*) AS taken FROM " + stream.NamePlates + " WHERE event = 'taken' GROUP BY lane, plate_type, TUMBLING(INTERVAL '1' MINUTE)"
)

// Config is the analytics section. See sample.yaml for every key.
type Config struct {
	// Disabled turns analytics off. Default false.
	Disabled bool `yaml:"disabled"`
	// StateDir holds one state file per query. Default <data_dir>/analytics.
	StateDir string `yaml:"state_dir"`
	// SaveInterval bounds how often progress is saved while no window
	// closes (windows closing are saved at once). Default 10s: a crash
	// re-reads at most that much from the stream (and emits nothing twice),
	// and the SD card is not rewritten every second.
	SaveInterval config.Duration `yaml:"save_interval"`
	// Token, if set, is required by the admin endpoint /api/queries as
	// "Authorization: Bearer <token>". Default "": reads are open, and
	// adding or stopping queries is allowed from loopback clients only.
	// The environment variable KAITEN_ANALYTICS_TOKEN overrides it.
	Token string `yaml:"token"`
	// AllowUnauthenticatedRemote lets clients beyond loopback add and stop
	// queries without a token (a trusted network only). Default false:
	// without a token, POST and DELETE /api/queries answer 403 to them.
	AllowUnauthenticatedRemote bool `yaml:"allow_unauthenticated_remote"`
	// Queries are the continuous queries. Absent means the demo query
	// plates_taken_per_minute; an empty list means none.
	Queries *[]QueryConfig `yaml:"queries"`
}

// QueryConfig is one named continuous query.
type QueryConfig struct {
	// Name: 1-64 of [a-zA-Z0-9_-]. Required. It names the consumer group
	// (analytics-<name>), the state file and the "query" field of results.
	Name string `yaml:"name" json:"name"`
	// SQL is the query; see Parse for what is supported. Required.
	SQL string `yaml:"sql" json:"sql"`
	// Output is the stream results go to. Default plate-stats.
	Output string `yaml:"output" json:"output,omitempty"`
	// EventTime is the JSON field (dotted path) holding the event time, an
	// RFC 3339 string or epoch milliseconds. Empty: arrival time.
	EventTime string `yaml:"event_time" json:"event_time,omitempty"`
	// AllowedLateness is how far behind the newest event time a record may
	// be and still count. Default 5s with event_time, 0 with arrival time.
	AllowedLateness config.Duration `yaml:"allowed_lateness" json:"-"`
	// LateOutput is the stream late records go to, in the dead-letter
	// format. Default deadletter.
	LateOutput string `yaml:"late_output" json:"late_output,omitempty"`
	// StartAtLatest: a new query (no saved state) skips what is already
	// stored. Default false: it starts at the oldest record.
	StartAtLatest bool `yaml:"start_at_latest" json:"start_at_latest,omitempty"`
	// Recent is how many of the newest results the status board keeps for
	// the dashboard. Default 20.
	Recent int `yaml:"recent" json:"recent,omitempty"`
}

var (
	queryName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	fieldPath = regexp.MustCompile(`^[^.\s]+(\.[^.\s]+)*$`)
)

// DemoQuery is the query run when the config has no analytics queries.
func DemoQuery() QueryConfig {
	return QueryConfig{Name: DemoQueryName, SQL: DemoQuerySQL}
}

// Normalize fills defaults, validates, and compiles the SQL. key is the
// config key prefix for errors, e.g. "analytics.queries[0]".
func (q *QueryConfig) Normalize(key string) (*Plan, error) {
	var errs []error
	if !queryName.MatchString(q.Name) {
		errs = append(errs, config.Errorf(key+".name", "%q: want 1-64 characters of a-z A-Z 0-9 _ -", q.Name))
	}
	if q.Output == "" {
		q.Output = DefaultOutput
	}
	if q.LateOutput == "" {
		q.LateOutput = DefaultLateOutput
	}
	for k, v := range map[string]string{".output": q.Output, ".late_output": q.LateOutput} {
		if stream.ValidName(v) != nil {
			errs = append(errs, config.Errorf(key+k, "%q is not a stream name", v))
		}
	}
	if q.EventTime != "" && !fieldPath.MatchString(q.EventTime) {
		errs = append(errs, config.Errorf(key+".event_time", "%q: want a field path such as ts or meta.time", q.EventTime))
	}
	if q.AllowedLateness.Duration == 0 && q.EventTime != "" {
		q.AllowedLateness.Duration = DefaultEventLateness
	}
	if q.AllowedLateness.Duration < 0 || q.AllowedLateness.Duration > 24*time.Hour {
		errs = append(errs, config.Errorf(key+".allowed_lateness", "%s: want 0 to 24h", q.AllowedLateness.Duration))
	}
	if q.Recent == 0 {
		q.Recent = DefaultRecent
	}
	if q.Recent < 0 || q.Recent > 1000 {
		errs = append(errs, config.Errorf(key+".recent", "%d: want 1 to 1000", q.Recent))
	}
	var p *Plan
	if strings.TrimSpace(q.SQL) == "" {
		errs = append(errs, config.Errorf(key+".sql", "must not be empty"))
	} else {
		var err error
		if p, err = Parse(q.SQL); err != nil {
			errs = append(errs, fmt.Errorf("%s.sql: %w", key, err))
		} else if p.Source == q.Output {
			errs = append(errs, config.Errorf(key+".output", "%q is also the query's source", q.Output))
		}
	}
	return p, errors.Join(errs...)
}

// Validate checks the section and every query; names must be unique.
func (c *Config) Validate() error {
	var errs []error
	if c.SaveInterval.Duration == 0 {
		c.SaveInterval.Duration = DefaultSaveInterval
	}
	if c.SaveInterval.Duration < 10*time.Millisecond || c.SaveInterval.Duration > time.Hour {
		errs = append(errs, config.Errorf("analytics.save_interval", "%s: want 10ms to 1h", c.SaveInterval.Duration))
	}
	if c.Token != "" && len(c.Token) < 8 {
		errs = append(errs, config.Errorf("analytics.token", "too short: want at least 8 characters"))
	}
	if c.Queries == nil {
		qs := []QueryConfig{DemoQuery()}
		c.Queries = &qs
	}
	seen := map[string]bool{}
	for i := range *c.Queries {
		q := &(*c.Queries)[i]
		key := fmt.Sprintf("analytics.queries[%d]", i)
		if _, err := q.Normalize(key); err != nil {
			errs = append(errs, err)
		}
		if seen[q.Name] {
			errs = append(errs, config.Errorf(key+".name", "%q is used twice", q.Name))
		}
		seen[q.Name] = true
	}
	return errors.Join(errs...)
}
