package security

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const dashToken = "dash-token-5c0e1b27"

func get(t *testing.T, u string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDashboardToken checks that with dashboard.token set every dashboard
// API and the websocket refuse a missing or wrong token and accept the
// right one as a bearer header, a query parameter or the cookie the page
// sets, while the page itself loads (it asks for the token). A websocket
// from another site's page is refused even with the cookie.
func TestDashboardToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	d := daemon(t, fmt.Sprintf("dashboard:\n  token: %s\n  max_clients: 2\n", dashToken))
	base := "http://" + d.HTTPAddr

	if st, _ := get(t, base+"/", nil); st != http.StatusOK {
		t.Fatalf("page: %d", st)
	}
	for _, api := range []string{"/api/dashboard/store", "/api/dashboard/gateway", "/api/dashboard/streams", "/api/dashboard/auth"} {
		if st, _ := get(t, base+api, nil); st != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", api, st)
		}
		if st, _ := get(t, base+api, http.Header{"Authorization": {"Bearer wrong-token-123"}}); st != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", api, st)
		}
		if st, _ := get(t, base+api+"?token="+dashToken[:len(dashToken)-1], nil); st != http.StatusUnauthorized {
			t.Errorf("%s with a token prefix: %d, want 401", api, st)
		}
		if st, _ := get(t, base+api, http.Header{"Cookie": {"kaiten_dashboard=nope-nope-nope"}}); st != http.StatusUnauthorized {
			t.Errorf("%s with a wrong cookie: %d, want 401", api, st)
		}
	}
	if t.Failed() {
		return
	}
	testutil.WaitFor(t, 15*time.Second, func() error { // the first push fills the views
		if st, b := get(t, base+"/api/dashboard/store", http.Header{"Authorization": {"Bearer " + dashToken}}); st != http.StatusOK {
			return fmt.Errorf("bearer: %d %s", st, b)
		}
		return nil
	})
	if st, _ := get(t, base+"/api/dashboard/streams?token="+url.QueryEscape(dashToken), nil); st != http.StatusOK {
		t.Errorf("query token: %d", st)
	}
	if st, _ := get(t, base+"/api/dashboard/gateway", http.Header{"Cookie": {"kaiten_dashboard=" + dashToken}}); st != http.StatusOK {
		t.Errorf("cookie: %d", st)
	}

	ws := "ws://" + d.HTTPAddr + "/ws?topics=gateway"
	if c, resp, err := websocket.DefaultDialer.Dial(ws, nil); err == nil {
		c.Close()
		t.Fatal("websocket without token was accepted")
	} else if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket without token: %v %v", resp, err)
	}
	if _, resp, err := websocket.DefaultDialer.Dial(ws+"&token=wrong-token-123", nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("websocket with a wrong token: want 401, got %v %v", resp, err)
	}
	// Another site's page in the same browser sends the dashboard cookie
	// with its own Origin: the websocket must refuse it.
	if c, resp, err := websocket.DefaultDialer.Dial(ws, http.Header{"Cookie": {"kaiten_dashboard=" + dashToken},
		"Origin": {"http://evil.example"}}); err == nil {
		c.Close()
		t.Fatal("a cross-site websocket carrying the dashboard cookie was accepted")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site websocket: want 403, got %v %v", resp, err)
	}
	if c, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Cookie": {"kaiten_dashboard=" + dashToken},
		"Origin": {"http://" + d.HTTPAddr}}); err != nil {
		t.Fatalf("same-origin websocket with the cookie: %v", err)
	} else {
		c.Close()
	}
	c, _, err := websocket.DefaultDialer.Dial(ws+"&token="+url.QueryEscape(dashToken), nil)
	if err != nil {
		t.Fatalf("websocket with the token: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, msg, err := c.ReadMessage(); err != nil || len(msg) == 0 {
		t.Fatalf("websocket with the token got no update: %v", err)
	}
}

const analyticsToken = "analytics-token-3f9a7c"

// TestAnalyticsAdminToken checks the analytics admin endpoint with
// analytics.token set: reading or adding queries needs the bearer token.
func TestAnalyticsAdminToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	d := daemon(t, fmt.Sprintf("analytics:\n  token: %s\n", analyticsToken))
	base := "http://" + d.HTTPAddr
	for _, hdr := range []http.Header{nil, {"Authorization": {"Bearer wrong-token-123"}}, {"Authorization": {analyticsToken}}} {
		if st, _ := get(t, base+"/api/queries", hdr); st != http.StatusUnauthorized {
			t.Errorf("GET /api/queries with %v: %d, want 401", hdr, st)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/queries",
		strings.NewReader(`{"name":"evil","sql":"SELECT * FROM plates","output":"plate-stats"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/queries without a token: %d, want 401", resp.StatusCode)
	}
	st, body := get(t, base+"/api/queries", http.Header{"Authorization": {"Bearer " + analyticsToken}})
	if st != http.StatusOK || strings.Contains(body, `"evil"`) {
		t.Errorf("GET /api/queries with the token: %d %s", st, body)
	}
}
