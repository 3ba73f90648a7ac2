package sdnotify

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Service. Zero values mean defaults.
type Options struct {
	// Notifier sends the states. Default: New() (from $NOTIFY_SOCKET); if
	// that fails the error is logged and nothing is sent.
	Notifier *Notifier
	// Interval is the watchdog timeout systemd enforces. Default: from
	// $WATCHDOG_USEC via WatchdogInterval; 0 there means no watchdog pings.
	// Pings go out every Interval/2.
	Interval time.Duration
	// Check, if set, runs before every ping with a context bounded by
	// CheckTimeout; a ping is sent only when it returns nil, so a gateway
	// that stops answering is restarted by systemd. It must be safe to call
	// from the ping goroutine.
	Check func(ctx context.Context) error
	// CheckTimeout bounds one Check. Default: a quarter of Interval.
	CheckTimeout time.Duration
	// Status is sent as STATUS= with READY=1, shown by `systemctl status`.
	Status string
	// Logger gets the service's logs. Default slog.Default().
	Logger *slog.Logger
}

// Service tells systemd the daemon is ready, keeps its watchdog fed while
// the daemon is healthy, and tells it when a stop begins. Its methods are
// safe for concurrent use.
type Service struct {
	n        *Notifier
	interval time.Duration
	logger   *slog.Logger

	pings, skipped atomic.Int64
	lastPing       atomic.Int64 // unix nanoseconds
	lastErr        atomic.Pointer[string]

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// Start sends READY=1 (with STATUS= when set) and, when the watchdog is
// on, starts a goroutine that sends WATCHDOG=1 every Interval/2 until ctx
// ends or Stop is called. A failed send is logged, never fatal: the daemon
// keeps running and systemd decides what a missing READY means.
func Start(ctx context.Context, o Options) *Service {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Notifier == nil {
		n, err := New()
		if err != nil {
			o.Logger.Error("systemd notify socket unusable; not notifying", "err", err)
			n = &Notifier{}
		}
		o.Notifier = n
	}
	if o.Interval == 0 {
		o.Interval, _ = WatchdogInterval()
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = o.Interval / 4
		if o.CheckTimeout <= 0 {
			o.CheckTimeout = 5 * time.Second
		}
	}
	s := &Service{n: o.Notifier, interval: o.Interval, logger: o.Logger, done: make(chan struct{})}
	states := []string{Ready}
	if o.Status != "" {
		states = append(states, "STATUS="+o.Status)
	}
	if err := s.n.Send(states...); err != nil {
		s.logger.Error("systemd READY=1 not sent", "err", err)
	} else if s.n.Enabled() {
		s.logger.Info("told systemd the gateway is ready", "watchdog", o.Interval)
	}
	ctx, s.cancel = context.WithCancel(ctx)
	if !s.n.Enabled() || o.Interval <= 0 {
		close(s.done)
		return s
	}
	go s.loop(ctx, o)
	return s
}

func (s *Service) loop(ctx context.Context, o Options) {
	defer close(s.done)
	t := time.NewTicker(o.Interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if o.Check != nil {
			cctx, cancel := context.WithTimeout(ctx, o.CheckTimeout)
			err := o.Check(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				s.skipped.Add(1)
				msg := err.Error()
				s.lastErr.Store(&msg)
				s.logger.Warn("health check failed; withholding the systemd watchdog ping", "err", err)
				continue
			}
		}
		if err := s.n.Send(Watchdog); err != nil {
			s.logger.Warn("systemd watchdog ping failed", "err", err)
			continue
		}
		s.pings.Add(1)
		s.lastPing.Store(time.Now().UnixNano())
	}
}

// Stop ends the ping goroutine and sends STOPPING=1. It is idempotent.
func (s *Service) Stop() {
	s.stopOnce.Do(func() {
		s.cancel()
		<-s.done
		if err := s.n.Send(Stopping); err != nil {
			s.logger.Warn("systemd STOPPING=1 not sent", "err", err)
		}
		_ = s.n.Close()
	})
}

// State is the service's live state, for the status board.
type State struct {
	Notify   bool      `json:"notify"`             // $NOTIFY_SOCKET is set
	Watchdog string    `json:"watchdog,omitempty"` // the timeout systemd enforces
	Pings    int64     `json:"pings"`              // WATCHDOG=1 sent
	Skipped  int64     `json:"skipped"`            // pings withheld by a failed check
	LastPing time.Time `json:"last_ping,omitzero"`
	LastErr  string    `json:"last_check_error,omitempty"`
}

// State returns a snapshot.
func (s *Service) State() State {
	st := State{Notify: s.n.Enabled(), Pings: s.pings.Load(), Skipped: s.skipped.Load()}
	if s.interval > 0 && st.Notify {
		st.Watchdog = s.interval.String()
	}
	if ns := s.lastPing.Load(); ns != 0 {
		st.LastPing = time.Unix(0, ns).UTC()
	}
	if e := s.lastErr.Load(); e != nil {
		st.LastErr = *e
	}
	return st
}
