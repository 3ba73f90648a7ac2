// Package dashboard serves the gateway's live views over websockets: the
// store view (belt, lanes, what to make next, sensor health), the gateway
// view (ingest rates, storage, delivery and source status, dead letters)
// and a raw tail of any stream. Views are fed by in-process stream
// followers (Store.Read and Store.Wait, no polling, no checkpoints) and the
// status board, and pushed through a Hub that drops slow clients instead of
// slowing anyone down. The page and its assets are embedded.
package dashboard

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kaiten-edge/kaiten/gateway/status"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Deps is what a Server reads from and registers on.
type Deps struct {
	Store *stream.Store
	// Status is the status board; nil means none.
	Status *status.Board
	// Metrics, if set, gets the dashboard's collectors.
	Metrics prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// StoreID is shown in the page title.
	StoreID string
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
}

// Server is the dashboard. Make it with New, register its handlers with
// Handle, then Start it; Stop ends everything it started.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	hub  *Hub

	plates  *Plates
	dead    *DeadLetters
	results *Results
	rates   rates

	// resultStreams are the query output streams followed (see
	// followResults); guarded by mu.
	resultStreams map[string]bool

	mu          sync.Mutex
	storeJSON   []byte // last pushed store view (the data object)
	gatewayJSON []byte // last pushed gateway view
	lastStore   StoreView
	lastGateway GatewayView
	rateHist    rateHistory

	tailMu sync.Mutex
	tails  map[string]*tail

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	m *metrics
}

// New validates cfg (filling defaults) and returns a server.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil {
		return nil, errors.New("dashboard: no store")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Status == nil {
		d.Status = &status.Board{}
	}
	s := &Server{cfg: cfg, deps: d, log: d.Logger.With("component", "dashboard"), tails: map[string]*tail{}}
	s.m = newMetrics(s)
	s.hub = NewHub(HubOptions{Queue: cfg.ClientQueue, MaxClients: cfg.MaxClients, OnTopic: s.onTopic,
		OnDrop: func(reason string) { s.m.dropped.WithLabelValues(reason).Inc() },
		OnSend: func(n int) { s.m.sent.Inc(); s.m.sentBytes.Add(float64(n)) }})
	s.plates = NewPlates(PlatesOptions{History: cfg.History.Duration, SilentAfter: cfg.SensorSilentAfter.Duration,
		RateWindow: cfg.RateWindow.Duration, Cover: cfg.Cover.Duration, PlateTTL: cfg.PlateTTL.Duration})
	s.dead = NewDeadLetters(cfg.History.Duration)
	s.results = NewResults()
	s.resultStreams = map[string]bool{}
	if d.Metrics != nil {
		if err := d.Metrics.Register(s.m); err != nil {
			return nil, fmt.Errorf("dashboard: metrics: %w", err)
		}
	}
	return s, nil
}

// Hub is the server's websocket hub.
func (s *Server) Hub() *Hub { return s.hub }

// Start starts the stream followers and the push ticker. It does not
// block; everything ends on Stop or when ctx ends.
func (s *Server) Start(ctx context.Context) {
	s.ctx, s.cancel = context.WithCancel(ctx)
	history := s.cfg.History.Duration
	now := s.deps.Now
	followers := []*follower{
		{store: s.deps.Store, stream: s.cfg.PlatesStream, log: s.log, gap: followGap, limit: 2000,
			since: func() time.Time { return now().Add(-history) },
			fn:    func(_ string, recs []stream.Record, live bool) { s.plates.Add(recs, live) }},
		{store: s.deps.Store, stream: s.cfg.DeadLetterStream, log: s.log, gap: followGap,
			since: func() time.Time { return now().Add(-history) },
			fn:    func(_ string, recs []stream.Record, live bool) { s.dead.Add(recs, live) }},
	}
	for _, f := range followers {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); f.run(s.ctx) }()
	}
	// The analytics' default output is always followed, and every other
	// output a running query names on the status board as it appears.
	s.followResults(stream.NamePlateStats)
	s.push()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.PushInterval.Duration)
		defer t.Stop()
		tt := time.NewTicker(tailFlush)
		defer tt.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
				s.push()
			case <-tt.C:
				s.flushTails()
			}
		}
	}()
}

// Stop closes every client and waits for the followers to end.
func (s *Server) Stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.hub.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dashboard: stop: %w", ctx.Err())
	}
}

// followGap is the least time between two reads of one shard by the
// dashboard's followers (see follower.gap): well under the push interval.
const followGap = 100 * time.Millisecond

// envelope is every websocket message: {"type":"store","data":{...}}.
type envelope struct {
	Type   string `json:"type"`
	Stream string `json:"stream,omitempty"`
	Data   any    `json:"data"`
}

// followResults starts following a continuous query's output stream
// (once per stream, at most maxResultStreams): like the plates stream, it
// is replayed from history ago, so the newest window of every query shows
// again after a restart.
func (s *Server) followResults(name string) {
	if stream.ValidName(name) != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resultStreams[name] || len(s.resultStreams) >= maxResultStreams || s.ctx.Err() != nil {
		return
	}
	s.resultStreams[name] = true
	history, now := s.cfg.History.Duration, s.deps.Now
	f := &follower{store: s.deps.Store, stream: name, log: s.log, gap: followGap,
		since: func() time.Time { return now().Add(-history) },
		fn:    func(_ string, recs []stream.Record, _ bool) { s.results.Add(name, recs) }}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f.run(s.ctx) }()
}

// push computes both views and publishes them.
func (s *Server) push() {
	now := s.deps.Now()
	components := encodeComponents(s.deps.Status.Snapshot)
	queries := parseQueryStatus(components[status.AnalyticsEntry])
	for _, q := range queries {
		if q.Output != "" {
			s.followResults(q.Output)
		}
	}
	s.plates.Expire(now)
	sv := s.plates.View(now)
	sv.Store = s.deps.StoreID
	sv.Analytics = s.results.View(now, queries, s.cfg.History.Duration)
	gv := s.rates.view(s.deps.Store.Stats(), now)
	gv.Components = components
	gv.DeadLetters = s.dead.view(now)
	gv.Dashboard.Clients = s.hub.Clients()
	gv.Dashboard.Dropped = s.hub.Dropped()
	sb, err1 := json.Marshal(sv)
	gb, err2 := json.Marshal(gv)
	if err := errors.Join(err1, err2); err != nil {
		s.log.Error("dashboard: encode views", "err", err)
		return
	}
	s.mu.Lock()
	s.storeJSON, s.gatewayJSON, s.lastStore, s.lastGateway = sb, gb, sv, gv
	s.rateHist.add(gv)
	s.mu.Unlock()
	s.hub.Publish("store", wrap("store", "", sb), true)
	s.hub.Publish("gateway", wrap("gateway", "", gb), true)
}

func wrap(typ, streamName string, data []byte) []byte {
	b, _ := json.Marshal(envelope{Type: typ, Stream: streamName, Data: json.RawMessage(data)})
	return b
}

// Handle registers the dashboard's routes on mux: GET / (the page),
// GET /dashboard/... (assets), GET /ws (websocket) and GET
// /api/dashboard/{store,gateway,rates,streams,auth}.
func (s *Server) Handle(mux *http.ServeMux) {
	sub, _ := fs.Sub(webFS, "web")
	mux.HandleFunc("GET /{$}", s.page)
	mux.Handle("GET /dashboard/", http.StripPrefix("/dashboard/", cacheAssets(http.FileServerFS(sub))))
	mux.Handle("GET /ws", s.auth(http.HandlerFunc(s.serveWS)))
	mux.Handle("GET /api/dashboard/store", s.auth(s.jsonHandler(func() []byte { s.mu.Lock(); defer s.mu.Unlock(); return s.storeJSON })))
	mux.Handle("GET /api/dashboard/gateway", s.auth(s.jsonHandler(func() []byte { s.mu.Lock(); defer s.mu.Unlock(); return s.gatewayJSON })))
	mux.Handle("GET /api/dashboard/rates", s.auth(s.jsonHandler(func() []byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		b, err := json.Marshal(&s.rateHist)
		if err != nil {
			return nil
		}
		return b
	})))
	mux.Handle("GET /api/dashboard/streams", s.auth(s.jsonHandler(func() []byte {
		names := s.deps.Store.ListStreams()
		if names == nil {
			names = []string{}
		}
		return mustJSON(names)
	})))
	mux.Handle("GET /api/dashboard/auth", s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})))
}

func cacheAssets(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	if tok := r.URL.Query().Get("token"); tok != "" && s.tokenOK(tok) {
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	}
	b, err := webFS.ReadFile("web/index.html")
	if err != nil {
		http.Error(w, "dashboard page missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func (s *Server) jsonHandler(get func() []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := get()
		if b == nil {
			http.Error(w, `{"error":"not ready"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b)
	})
}

const cookieName = "kaiten_dashboard"

func (s *Server) tokenOK(tok string) bool {
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
}

// auth requires the token, when one is configured, as a bearer header, a
// token query parameter or the dashboard cookie.
func (s *Server) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token == "" {
			h.ServeHTTP(w, r)
			return
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok == "" {
			tok = r.URL.Query().Get("token")
		}
		if tok == "" {
			if c, err := r.Cookie(cookieName); err == nil {
				tok = c.Value
			}
		}
		if tok == "" || !s.tokenOK(tok) {
			s.m.denied.Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="kaiten dashboard"`)
			http.Error(w, "dashboard token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// validTopic reports whether a client may subscribe to topic: "store",
// "gateway" or "tail/<an existing stream>".
func (s *Server) validTopic(topic string) bool {
	switch topic {
	case "store", "gateway":
		return true
	}
	name, ok := strings.CutPrefix(topic, "tail/")
	if !ok || stream.ValidName(name) != nil {
		return false
	}
	for _, n := range s.deps.Store.ListStreams() {
		if n == name {
			return true
		}
	}
	return false
}
