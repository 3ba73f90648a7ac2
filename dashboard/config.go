package dashboard

import (
	"errors"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Config is the "dashboard" section of kaiten's YAML file. Every key is
// documented with its default in sample.yaml beside this file; zero values
// mean the defaults.
type Config struct {
	// Disabled turns the dashboard off (no page, websocket or API).
	Disabled bool `yaml:"disabled"`
	// Token, if set, is required by every dashboard API and websocket
	// (the page itself is served to anyone; it asks for the token). Give it
	// as ?token= once (the page keeps it), as "Authorization: Bearer", or as
	// the kaiten_dashboard cookie. Default "" (open). The environment
	// variable KAITEN_DASHBOARD_TOKEN overrides it.
	Token string `yaml:"token"`
	// PlatesStream holds plate events and heartbeats. Default "plates".
	PlatesStream string `yaml:"plates_stream"`
	// DeadLetterStream holds dead letters. Default "deadletter".
	DeadLetterStream string `yaml:"deadletter_stream"`
	// History is the chart's span and how far back the store view is
	// rebuilt from the stream at start. Default 1h; 1m to 24h.
	History config.Duration `yaml:"history"`
	// PushInterval is how often the store and gateway views are pushed.
	// Default 1s; 100ms to 1m.
	PushInterval config.Duration `yaml:"push_interval"`
	// SensorSilentAfter: a sensor unheard this long is shown silent.
	// Default 60s.
	SensorSilentAfter config.Duration `yaml:"sensor_silent_after"`
	// RateWindow is the window for take rates. Default 10m.
	RateWindow config.Duration `yaml:"rate_window"`
	// Cover is how long the belt should last at the take rate; the
	// make-next list asks for what is missing. Default 5m.
	Cover config.Duration `yaml:"cover"`
	// PlateTTL: a plate unseen this long counts as gone. Default 30m.
	PlateTTL config.Duration `yaml:"plate_ttl"`
	// ClientQueue is the per-client send queue, in messages; a client that
	// falls this far behind is dropped (its page reconnects). Default 64.
	ClientQueue int `yaml:"client_queue"`
	// MaxClients caps websocket clients. Default 64.
	MaxClients int `yaml:"max_clients"`
	// WriteTimeout bounds one websocket write. Default 5s.
	WriteTimeout config.Duration `yaml:"write_timeout"`
}

// Validate fills defaults and checks the section; errors name the key.
func (c *Config) Validate() error {
	var errs []error
	def := func(d *config.Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	if c.PlatesStream == "" {
		c.PlatesStream = stream.NamePlates
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = stream.NameDeadLetter
	}
	if stream.ValidName(c.PlatesStream) != nil {
		errs = append(errs, config.Errorf("dashboard.plates_stream", "%q: want %s", c.PlatesStream, stream.NameRule))
	}
	if stream.ValidName(c.DeadLetterStream) != nil {
		errs = append(errs, config.Errorf("dashboard.deadletter_stream", "%q: want %s", c.DeadLetterStream, stream.NameRule))
	}
	def(&c.History, time.Hour)
	def(&c.PushInterval, time.Second)
	def(&c.SensorSilentAfter, 60*time.Second)
	def(&c.RateWindow, 10*time.Minute)
	def(&c.Cover, 5*time.Minute)
	def(&c.PlateTTL, 30*time.Minute)
	def(&c.WriteTimeout, 5*time.Second)
	if h := c.History.Duration; h < time.Minute || h > 24*time.Hour {
		errs = append(errs, config.Errorf("dashboard.history", "%s: want 1m to 24h", h))
	}
	if p := c.PushInterval.Duration; p < 100*time.Millisecond || p > time.Minute {
		errs = append(errs, config.Errorf("dashboard.push_interval", "%s: want 100ms to 1m", p))
	}
	if c.RateWindow.Duration < time.Minute || c.RateWindow.Duration > c.History.Duration {
		errs = append(errs, config.Errorf("dashboard.rate_window", "%s: want 1m up to dashboard.history", c.RateWindow.Duration))
	}
	if c.ClientQueue < 0 || c.ClientQueue > 4096 {
		errs = append(errs, config.Errorf("dashboard.client_queue", "%d: want 1 to 4096", c.ClientQueue))
	}
	if c.ClientQueue == 0 {
		c.ClientQueue = 64
	}
	if c.MaxClients < 0 || c.MaxClients > 10000 {
		errs = append(errs, config.Errorf("dashboard.max_clients", "%d: want 1 to 10000", c.MaxClients))
	}
	if c.MaxClients == 0 {
		c.MaxClients = 64
	}
	if len(c.Token) > 0 && len(c.Token) < 8 {
		errs = append(errs, config.Errorf("dashboard.token", "too short: want at least 8 characters"))
	}
	return errors.Join(errs...)
}
