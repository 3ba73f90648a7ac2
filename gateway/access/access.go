// Package access is the gateway's one rule for surfaces that write or
// administer (the Kinesis API, the analytics admin endpoint, the embedded
// MQTT broker, the profiler): without credentials configured, only clients
// on this machine (loopback) may use them. Read-only views (the dashboard,
// /metrics, /healthz, /api/status) are not covered and may stay open.
//
// The rule is applied twice: each surface checks every request or
// connection (so a remote client without credentials is refused even if a
// config slipped through), and a config that would let remote clients
// write without credentials is refused at start and by `kaiten
// check-config`, unless its section's explicit opt-out key
// (allow_unauthenticated_remote, or kinesis.auth.allow_remote_unsigned)
// is set.
package access

import (
	"errors"
	"net"
	"net/http"
)

// ErrRemoteUnauthenticated is wrapped by config errors for a writable
// surface that would accept clients beyond loopback without credentials.
var ErrRemoteUnauthenticated = errors.New("access: writable surface open beyond loopback without credentials")

// IsLoopback reports whether remoteAddr (host:port, as in
// http.Request.RemoteAddr, or a bare IP) is on this machine.
func IsLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackListen reports whether a listen address (host:port) accepts
// connections from this machine only: a loopback IP or "localhost". An
// empty host, 0.0.0.0, [::] or any other address listens beyond loopback.
func LoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return host == "localhost" || IsLoopback(host)
}

// LoopbackOnly wraps h so that a request from beyond loopback gets 403
// Forbidden with why, naming the config key that would admit it.
func LoopbackOnly(h http.Handler, why string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !IsLoopback(r.RemoteAddr) {
			http.Error(w, why, http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
