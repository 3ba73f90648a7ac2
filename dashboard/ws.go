package dashboard

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	pongWait       = 30 * time.Second
	pingPeriod     = 10 * time.Second
	maxClientMsg   = 4 << 10
	maxTopics      = 4
	closeTryLater  = 1013 // RFC 6455 registry: try again later
	closeForbidden = 1008 // policy violation
)

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 8192,
	// The default origin check (same host) stays on: the dashboard cookie
	// must not be usable from another site's page.
}

// wsConn adapts a gorilla websocket to Conn. WriteMessage is called by the
// hub's writer goroutine only; pings use WriteControl, which gorilla allows
// concurrently with it.
type wsConn struct {
	c       *websocket.Conn
	timeout time.Duration
	once    sync.Once
}

func (w *wsConn) WriteMessage(msg []byte) error {
	_ = w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.c.WriteMessage(websocket.TextMessage, msg)
}

func (w *wsConn) Close() error {
	var err error
	w.once.Do(func() { err = w.c.Close() })
	return err
}

// clientMsg is what a page sends: the topics it wants now.
type clientMsg struct {
	Subscribe []string `json:"subscribe"`
}

// serveWS upgrades to a websocket and attaches the client to the hub.
// Topics come from ?topics=store,gateway and later from
// {"subscribe":[...]} messages. The handler goroutine is the reader: it
// applies subscriptions, answers pings, and drops the client when the
// connection fails or is silent for longer than pongWait.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade already answered with an HTTP error
	}
	wc := &wsConn{c: conn, timeout: s.cfg.WriteTimeout.Duration}
	c, err := s.hub.Attach(wc)
	if err != nil {
		code := closeTryLater
		if !errors.Is(err, ErrHubFull) {
			code = websocket.CloseGoingAway
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, err.Error()), time.Now().Add(time.Second))
		_ = conn.Close()
		return
	}
	defer c.Close()
	if q := r.URL.Query().Get("topics"); q != "" {
		if !s.subscribe(c, strings.Split(q, ",")) {
			return
		}
	}
	conn.SetReadLimit(maxClientMsg)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	go func() {
		t := time.NewTicker(pingPeriod)
		defer t.Stop()
		for {
			select {
			case <-c.Done():
				return
			case <-t.C:
				if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WriteTimeout.Duration)); err != nil {
					c.Close()
					return
				}
			}
		}
	}()
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(pongWait))
		var m clientMsg
		if err := json.Unmarshal(data, &m); err != nil {
			s.closeWith(wc, closeForbidden, "bad message: want {\"subscribe\":[topics]}")
			return
		}
		if !s.subscribe(c, m.Subscribe) {
			return
		}
	}
}

// subscribe validates and applies topics; on a bad topic it closes the
// connection with the reason and returns false.
func (s *Server) subscribe(c *Client, topics []string) bool {
	if len(topics) > maxTopics {
		s.closeWith(c.conn.(*wsConn), closeForbidden, "too many topics")
		return false
	}
	for _, t := range topics {
		if !s.validTopic(t) {
			s.closeWith(c.conn.(*wsConn), closeForbidden, "unknown topic "+clip(t, 60))
			return false
		}
	}
	c.Subscribe(topics...)
	return true
}

func (s *Server) closeWith(w *wsConn, code int, reason string) {
	_ = w.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	_ = w.Close()
}
