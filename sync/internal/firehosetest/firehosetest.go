// Package firehosetest is an HTTP endpoint that speaks the receiving side
// of the Firehose HTTP-endpoint delivery protocol for tests: it checks every
// header and body field of each request, answers as the test asks (ok,
// fail, stall, 413, a wrong request id), and keeps what it accepted.
package firehosetest

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"time"
)

// Mode is how the endpoint answers.
type Mode int

// Modes.
const (
	OK         Mode = iota // 200 with the request id
	Fail                   // 500
	Stall                  // hold the request until the mode changes or the client gives up
	TooLarge               // 413
	WrongID                // 200 with another request id
	Unexpected             // 200 with a body that is not JSON
)

// Delivery is one accepted request.
type Delivery struct {
	RequestID string
	Records   [][]byte
	Attrs     map[string]string
}

// Server is the endpoint.
type Server struct {
	*httptest.Server
	// AccessKey, when set, must arrive in X-Amz-Firehose-Access-Key.
	AccessKey string
	// Attrs, when set, must arrive in X-Amz-Firehose-Common-Attributes.
	Attrs map[string]string

	mu        sync.Mutex
	mode      Mode
	changed   chan struct{}
	accepted  []Delivery
	requests  int
	byID      map[string]int // request id -> attempts
	problems  []string
	recvBytes int64
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// New starts an endpoint; close it with Close.
func New() *Server {
	s := &Server{changed: make(chan struct{}), byID: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// SetMode changes how the endpoint answers; stalled requests re-check.
func (s *Server) SetMode(m Mode) {
	s.mu.Lock()
	s.mode = m
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// Accepted returns the deliveries answered with 200 and the right id.
func (s *Server) Accepted() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.accepted...)
}

// Requests counts every request received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Attempts returns how often a request id was seen.
func (s *Server) Attempts(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// Problems lists protocol violations seen so far.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

func (s *Server) problem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

type request struct {
	RequestID *string `json:"requestId"`
	Timestamp *int64  `json:"timestamp"`
	Records   []struct {
		Data *[]byte `json:"data"`
	} `json:"records"`
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		s.problem("method %s, want POST", r.Method)
	}
	h := r.Header
	if v := h.Get("Content-Type"); v != "application/json" {
		s.problem("Content-Type %q", v)
	}
	if v := h.Get("X-Amz-Firehose-Protocol-Version"); v != "1.0" {
		s.problem("X-Amz-Firehose-Protocol-Version %q", v)
	}
	hid := h.Get("X-Amz-Firehose-Request-Id")
	if !uuidRE.MatchString(hid) {
		s.problem("X-Amz-Firehose-Request-Id %q is not a UUID", hid)
	}
	if v := h.Get("X-Amz-Firehose-Source-Arn"); !regexp.MustCompile(`^arn:aws:firehose:[a-z0-9-]+:\d{12}:deliverystream/.+`).MatchString(v) {
		s.problem("X-Amz-Firehose-Source-Arn %q", v)
	}
	if s.AccessKey != "" && h.Get("X-Amz-Firehose-Access-Key") != s.AccessKey {
		s.problem("X-Amz-Firehose-Access-Key %q", h.Get("X-Amz-Firehose-Access-Key"))
	}
	attrs := map[string]string{}
	if v := h.Get("X-Amz-Firehose-Common-Attributes"); v != "" {
		var ca struct {
			CommonAttributes map[string]string `json:"commonAttributes"`
		}
		if err := json.Unmarshal([]byte(v), &ca); err != nil || ca.CommonAttributes == nil {
			s.problem("X-Amz-Firehose-Common-Attributes %q: %v", v, err)
		}
		attrs = ca.CommonAttributes
	}
	if s.Attrs != nil && fmt.Sprint(attrs) != fmt.Sprint(s.Attrs) {
		s.problem("common attributes %v, want %v", attrs, s.Attrs)
	}
	var body io.Reader = r.Body
	if h.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.problem("gzip body: %v", err)
			http.Error(w, "bad gzip", 400)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return
	}
	var req request
	if err := json.Unmarshal(raw, &req); err != nil {
		s.problem("body is not JSON: %v", err)
		w.WriteHeader(400)
		return
	}
	if req.RequestID == nil || *req.RequestID != hid {
		s.problem("body requestId %v, header %q", req.RequestID, hid)
	}
	if req.Timestamp == nil || *req.Timestamp < time.Now().Add(-time.Hour).UnixMilli() || *req.Timestamp > time.Now().Add(time.Minute).UnixMilli() {
		s.problem("body timestamp %v is not a current Unix time in ms", req.Timestamp)
	}
	var recs [][]byte
	for i, rec := range req.Records {
		if rec.Data == nil {
			s.problem("records[%d] has no data", i)
			continue
		}
		recs = append(recs, *rec.Data)
	}
	s.mu.Lock()
	s.byID[hid]++
	s.recvBytes += int64(len(raw))
	s.mu.Unlock()

	for {
		s.mu.Lock()
		mode, changed := s.mode, s.changed
		s.mu.Unlock()
		if mode != Stall {
			break
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	ts := time.Now().UnixMilli()
	switch mode {
	case Fail:
		w.WriteHeader(500)
		_ = json.NewEncoder(w).Encode(map[string]any{"requestId": hid, "timestamp": ts, "errorMessage": "failing on purpose"})
	case TooLarge:
		w.WriteHeader(413)
		_ = json.NewEncoder(w).Encode(map[string]any{"requestId": hid, "timestamp": ts, "errorMessage": "too large"})
	case WrongID:
		_ = json.NewEncoder(w).Encode(map[string]any{"requestId": "00000000-0000-0000-0000-000000000000", "timestamp": ts})
	case Unexpected:
		_, _ = io.WriteString(w, "<html>ok</html>")
	default:
		s.mu.Lock()
		s.accepted = append(s.accepted, Delivery{RequestID: hid, Records: recs, Attrs: attrs})
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"requestId": hid, "timestamp": ts})
	}
}
