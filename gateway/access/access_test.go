package access

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.8.9.10:1": true, "[::1]:80": true, "::1": true, "127.0.0.1": true,
		"192.168.1.20:5000": false, "[fe80::1]:80": false, "10.0.0.1": false, "": false, "localhost:80": false,
	} {
		if got := IsLoopback(in); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestLoopbackListen(t *testing.T) {
	for in, want := range map[string]bool{
		"127.0.0.1:1883": true, "[::1]:1883": true, "localhost:1883": true,
		"0.0.0.0:1883": false, ":1883": false, "[::]:1883": false, "192.168.1.5:1883": false,
		"mqtt.lan:1883": false, "no port": false,
	} {
		if got := LoopbackListen(in); got != want {
			t.Errorf("LoopbackListen(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	h := LoopbackOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }), "no")
	for remote, want := range map[string]int{"127.0.0.1:4000": http.StatusNoContent, "192.0.2.7:4000": http.StatusForbidden} {
		r := httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("from %s: %d, want %d", remote, w.Code, want)
		}
	}
}
