package main

import "testing"

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":   "127.0.0.1:8080",
		"0.0.0.0:8080":     "127.0.0.1:8080",
		"[::]:8080":        "127.0.0.1:8080",
		":8080":            "127.0.0.1:8080",
		"192.168.1.5:80":   "192.168.1.5:80",
		"[::1]:9000":       "[::1]:9000",
		"gateway.lan:8080": "gateway.lan:8080",
		"not an address":   "not an address",
	} {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
