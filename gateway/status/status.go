// Package status is a board where components publish their live state
// (source connected, delivery backlog, query lag) for the dashboard and the
// status endpoint. It holds functions, not values, so a snapshot is always
// current and publishing costs nothing on hot paths.
package status

import (
	"fmt"
	"sort"
	"sync"
)

// Board maps component names to functions that report their state. The zero
// value is ready to use; all methods are safe for concurrent use.
type Board struct {
	mu     sync.RWMutex
	m      map[string]func() any
	health map[string]func() []string
}

// SetHealth publishes, under name, a function that returns why the
// component is degraded (it runs, but something it depends on needs an
// operator: a destination's table is missing), or nothing when it is not.
// /healthz lists these reasons. fn follows Set's rules.
func (b *Board) SetHealth(name string, fn func() []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.health == nil {
		b.health = make(map[string]func() []string)
	}
	b.health[name] = fn
}

// Degraded calls every health function and returns "name: reason" for
// each reason, sorted; none when every component is healthy. A function
// that panics is reported as a reason.
func (b *Board) Degraded() []string {
	b.mu.RLock()
	fns := make(map[string]func() []string, len(b.health))
	for n, fn := range b.health {
		fns[n] = fn
	}
	b.mu.RUnlock()
	var out []string
	for n, fn := range fns {
		reasons, ok := call(func() any { return fn() }).([]string)
		if !ok {
			reasons = []string{"health reporter panicked"}
		}
		for _, r := range reasons {
			out = append(out, n+": "+r)
		}
	}
	sort.Strings(out)
	return out
}

// Set publishes fn under name, replacing any earlier one. fn must be safe to
// call from any goroutine and must not block; its result is encoded as JSON.
func (b *Board) Set(name string, fn func() any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = make(map[string]func() any)
	}
	b.m[name] = fn
}

// Remove unpublishes name.
func (b *Board) Remove(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, name)
}

// Names lists the published names in order.
func (b *Board) Names() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	names := make([]string, 0, len(b.m))
	for n := range b.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Snapshot calls every published function and returns the results by name.
// A function that panics is reported as {"error": ...} under its name.
func (b *Board) Snapshot() map[string]any {
	b.mu.RLock()
	fns := make(map[string]func() any, len(b.m))
	for n, fn := range b.m {
		fns[n] = fn
	}
	b.mu.RUnlock()
	out := make(map[string]any, len(fns))
	for n, fn := range fns {
		out[n] = call(fn)
	}
	return out
}

// call runs one reporter; a reporter that panics yields an error entry
// instead of taking the whole snapshot down.
func call(fn func() any) (v any) {
	defer func() {
		if r := recover(); r != nil {
			v = map[string]any{"error": fmt.Sprintf("status reporter panicked: %v", r)}
		}
	}()
	return fn()
}
