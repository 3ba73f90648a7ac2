package analytics

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/access"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/internal/atomicfile"
)

// Manager errors, for the admin endpoint.
var (
	// ErrQueryExists is returned by Add for a name already running.
	ErrQueryExists = errors.New("analytics: a query with this name exists")
	// ErrQueryNotFound is returned by Remove for an unknown name.
	ErrQueryNotFound = errors.New("analytics: no such query")
	// ErrTooManyQueries is returned by Add beyond MaxQueries.
	ErrTooManyQueries = errors.New("analytics: too many queries")
)

// MaxQueries caps the queries one gateway runs (configured plus added).
const MaxQueries = 64

// Manager runs the configured queries plus those added through the admin
// endpoint (kept in <state_dir>/queries.json so they survive a restart).
// All methods are safe for concurrent use.
type Manager struct {
	opts RunnerOptions
	ctx  context.Context

	mu      sync.Mutex
	runners map[string]*Runner
	order   []string
	failed  []status.Query // queries that could not start
	added   []QueryConfig  // through the API
}

// NewManager returns a manager; Start starts its queries.
func NewManager(o RunnerOptions) *Manager {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Manager{opts: o, runners: map[string]*Runner{}}
}

func (m *Manager) apiFile() string { return filepath.Join(m.opts.StateDir, "queries.json") }

// Start starts the configured queries and those saved from the API. A
// query whose state file cannot be read does not run and shows as an
// error in Status (the other queries and the gateway go on; the file is
// left as it is for the operator to inspect).
func (m *Manager) Start(ctx context.Context, queries []QueryConfig) error {
	m.ctx = ctx
	if err := os.MkdirAll(m.opts.StateDir, 0o750); err != nil {
		return fmt.Errorf("analytics: state dir: %w", err)
	}
	raw, err := os.ReadFile(m.apiFile())
	switch {
	case err == nil:
		var saved []apiQuery
		if err := json.Unmarshal(raw, &saved); err != nil {
			return fmt.Errorf("analytics: %s: %w", m.apiFile(), err)
		}
		for _, a := range saved {
			q, err := a.config()
			if err != nil {
				return fmt.Errorf("analytics: %s: %w", m.apiFile(), err)
			}
			m.added = append(m.added, q)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("analytics: %w", err)
	}
	for _, q := range append(slices.Clone(queries), m.added...) {
		if _, ok := m.runners[q.Name]; ok {
			m.opts.Logger.Warn("analytics: a query added through the API has the name of a configured one; the configured one runs", "query", q.Name)
			continue
		}
		if err := m.start(q); err != nil {
			m.opts.Logger.Error("analytics: query not started", "query", q.Name, "err", err)
			m.mu.Lock()
			m.failed = append(m.failed, status.Query{Name: q.Name, SQL: q.SQL, Output: q.Output, State: "error", Error: err.Error()})
			m.mu.Unlock()
		}
	}
	return nil
}

func (m *Manager) start(q QueryConfig) error {
	r, err := NewRunner(m.ctx, q, m.opts)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.runners[q.Name] = r
	m.order = append(m.order, q.Name)
	m.mu.Unlock()
	r.Start(m.ctx)
	m.opts.Logger.Info("analytics: query started", "query", q.Name, "source", r.plan.Source, "output", r.cfg.Output, "window", describeWindow(r.plan.Window))
	return nil
}

// Add validates and starts a query, and remembers it across restarts.
func (m *Manager) Add(q QueryConfig) (status.Query, error) {
	if _, err := q.Normalize("query"); err != nil {
		return status.Query{}, err
	}
	m.mu.Lock()
	_, exists := m.runners[q.Name]
	n := len(m.runners)
	m.mu.Unlock()
	if exists {
		return status.Query{}, fmt.Errorf("%w: %s", ErrQueryExists, q.Name)
	}
	if n >= MaxQueries {
		return status.Query{}, fmt.Errorf("%w: at most %d", ErrTooManyQueries, MaxQueries)
	}
	if err := m.start(q); err != nil {
		return status.Query{}, err
	}
	m.mu.Lock()
	m.added = append(m.added, q)
	err := m.saveAdded()
	r := m.runners[q.Name]
	m.mu.Unlock()
	return r.Status(), err
}

// Remove stops a query. Its state file stays, so adding it again resumes.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	r, ok := m.runners[name]
	if ok {
		delete(m.runners, name)
		m.order = slices.DeleteFunc(m.order, func(s string) bool { return s == name })
		m.added = slices.DeleteFunc(m.added, func(q QueryConfig) bool { return q.Name == name })
	}
	var err error
	if ok {
		err = m.saveAdded()
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrQueryNotFound, name)
	}
	m.opts.Metrics.forget(name)
	return errors.Join(r.Stop(ctx), err)
}

// saveAdded writes the API-added queries; m.mu is held.
func (m *Manager) saveAdded() error {
	out := make([]apiQuery, 0, len(m.added))
	for _, q := range m.added {
		out = append(out, apiOf(q))
	}
	raw, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(m.apiFile(), raw, 0o640); err != nil {
		return fmt.Errorf("analytics: save queries: %w", err)
	}
	return nil
}

// Stop stops every query.
func (m *Manager) Stop(ctx context.Context) error {
	m.mu.Lock()
	rs := make([]*Runner, 0, len(m.runners))
	for _, n := range m.order {
		rs = append(rs, m.runners[n])
	}
	m.mu.Unlock()
	var errs []error
	for _, r := range rs {
		errs = append(errs, r.Stop(ctx))
	}
	return errors.Join(errs...)
}

// Status lists every query's state, in start order.
func (m *Manager) Status() []status.Query {
	m.mu.Lock()
	rs := make([]*Runner, 0, len(m.runners))
	for _, n := range m.order {
		rs = append(rs, m.runners[n])
	}
	failed := slices.Clone(m.failed)
	m.mu.Unlock()
	out := make([]status.Query, 0, len(rs)+len(failed))
	for _, r := range rs {
		out = append(out, r.Status())
	}
	for _, f := range failed {
		f.Recent = []json.RawMessage{}
		out = append(out, f)
	}
	return out
}

// BoardStatus is what the manager publishes on the status board under
// status.AnalyticsEntry: a status.Analytics.
func (m *Manager) BoardStatus() any {
	return status.Analytics{Queries: m.Status()}
}

// apiQuery is a query as the admin endpoint reads and writes it.
type apiQuery struct {
	Name            string `json:"name"`
	SQL             string `json:"sql"`
	Output          string `json:"output,omitempty"`
	EventTime       string `json:"event_time,omitempty"`
	AllowedLateness string `json:"allowed_lateness,omitempty"` // e.g. "5s"
	LateOutput      string `json:"late_output,omitempty"`
	StartAtLatest   bool   `json:"start_at_latest,omitempty"`
	Recent          int    `json:"recent,omitempty"`
}

func (a apiQuery) config() (QueryConfig, error) {
	q := QueryConfig{Name: a.Name, SQL: a.SQL, Output: a.Output, EventTime: a.EventTime,
		LateOutput: a.LateOutput, StartAtLatest: a.StartAtLatest, Recent: a.Recent}
	if a.AllowedLateness != "" {
		d, err := time.ParseDuration(a.AllowedLateness)
		if err != nil {
			return q, config.Errorf("allowed_lateness", "%q is not a duration such as 5s", a.AllowedLateness)
		}
		q.AllowedLateness = config.Duration{Duration: d}
	}
	return q, nil
}

func apiOf(q QueryConfig) apiQuery {
	a := apiQuery{Name: q.Name, SQL: q.SQL, Output: q.Output, EventTime: q.EventTime,
		LateOutput: q.LateOutput, StartAtLatest: q.StartAtLatest, Recent: q.Recent}
	if q.AllowedLateness.Duration > 0 {
		a.AllowedLateness = q.AllowedLateness.String()
	}
	return a
}

// Register adds the admin endpoint to mux:
//
//	GET    /api/queries         every query's status
//	GET    /api/queries/{name}  one query's status
//	POST   /api/queries         add a query: {"name","sql","output","event_time","allowed_lateness","late_output"}
//	DELETE /api/queries/{name}  stop a query (its state is kept)
//
// With a non-empty token every request needs "Authorization: Bearer <token>".
// Without one, the reads stay open but the writes (POST, DELETE) are
// accepted only from loopback clients (403 otherwise), unless allowRemote
// (analytics.allow_unauthenticated_remote) opens them to every client.
func (m *Manager) Register(mux *http.ServeMux, token string, allowRemote bool) {
	handle := func(pattern string, h http.HandlerFunc) {
		write := !strings.HasPrefix(pattern, http.MethodGet+" ")
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if token == "" && write && !allowRemote && !access.IsLoopback(r.RemoteAddr) {
				writeError(w, http.StatusForbidden, errors.New("analytics: adding or stopping queries from another host needs analytics.token"))
				return
			}
			if token != "" {
				got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
					w.Header().Set("WWW-Authenticate", `Bearer realm="kaiten"`)
					writeError(w, http.StatusUnauthorized, errors.New("analytics: a valid bearer token is required"))
					return
				}
			}
			h(w, r)
		})
	}
	handle("GET /api/queries", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"queries": m.Status()})
	})
	handle("GET /api/queries/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, s := range m.Status() {
			if s.Name == r.PathValue("name") {
				writeJSON(w, http.StatusOK, s)
				return
			}
		}
		writeError(w, http.StatusNotFound, fmt.Errorf("%w: %s", ErrQueryNotFound, r.PathValue("name")))
	})
	handle("POST /api/queries", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body: %w", err))
			return
		}
		var a apiQuery
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
			return
		}
		q, err := a.config()
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if _, err := q.Normalize("query"); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		st, err := m.Add(q)
		switch {
		case errors.Is(err, ErrQueryExists):
			writeError(w, http.StatusConflict, err)
		case errors.Is(err, ErrTooManyQueries):
			writeError(w, http.StatusTooManyRequests, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			writeJSON(w, http.StatusCreated, st)
		}
	})
	handle("DELETE /api/queries/{name}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		err := m.Remove(ctx, r.PathValue("name"))
		switch {
		case errors.Is(err, ErrQueryNotFound):
			writeError(w, http.StatusNotFound, err)
		case err != nil:
			writeError(w, http.StatusInternalServerError, err)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	raw, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(raw)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
