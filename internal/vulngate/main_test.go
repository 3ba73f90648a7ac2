package main

import (
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	in := `{"config":{"scanner_name":"govulncheck"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/m","version":"v1.1.0","package":"example.com/m/p","function":"F"}]}}
{"finding":{"osv":"GO-2","fixed_version":"go1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Get"}]}}
{"finding":{"osv":"GO-3","trace":[{"module":"example.com/n","version":"v0.1.0"}]}}
`
	var out strings.Builder
	if code := run(strings.NewReader(in), &out); code != 1 || !strings.Contains(out.String(), "REACHABLE: GO-1") || strings.Contains(out.String(), "GO-3") {
		t.Fatalf("code %d\n%s", code, out.String())
	}
	out.Reset()
	in = strings.Join(strings.Split(in, "\n")[2:], "\n")
	if code := run(strings.NewReader(in), &out); code != 0 || !strings.Contains(out.String(), "1 in the Go standard library") {
		t.Fatalf("stdlib only: code %d\n%s", code, out.String())
	}
	if code := run(strings.NewReader("{not json"), &out); code != 2 {
		t.Fatal("bad input accepted")
	}
}
