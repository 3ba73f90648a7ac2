// Command vulngate reads `govulncheck -format json` on stdin and fails when
// our code reaches a vulnerable function in a module we can upgrade. Findings
// in the Go standard library are listed but do not fail the gate: they are
// fixed by the Go toolchain the machine has, not by this repository (the
// README says which Go release fixes them).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
)

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
}

type message struct {
	Finding *struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	} `json:"finding"`
}

func main() { os.Exit(run(os.Stdin, os.Stdout)) }

func run(in io.Reader, out io.Writer) int {
	dec := json.NewDecoder(in)
	blocking := map[string]string{}
	stdlib := map[string]string{}
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			fmt.Fprintln(out, "vulngate: reading govulncheck output:", err)
			return 2
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // imported or required, but not reached
		}
		top := f.Trace[0]
		desc := fmt.Sprintf("%s %s (fixed in %s) via %s.%s", top.Module, top.Version, f.FixedVersion, top.Package, top.Function)
		if top.Module == "stdlib" {
			stdlib[f.OSV] = desc
		} else {
			blocking[f.OSV] = desc
		}
	}
	list := func(title string, m map[string]string) {
		ids := make([]string, 0, len(m))
		for id := range m {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(out, "%s %s: %s\n", title, id, m[id])
		}
	}
	list("toolchain (not failing):", stdlib)
	list("REACHABLE:", blocking)
	fmt.Fprintf(out, "vulngate: %d reachable in modules, %d in the Go standard library\n", len(blocking), len(stdlib))
	if len(blocking) > 0 {
		return 1
	}
	return 0
}
