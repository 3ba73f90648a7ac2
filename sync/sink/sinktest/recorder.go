package sinktest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/kaiten-edge/kaiten/sync/sink"
)

// recorder wraps the destination: it counts attempts per batch, notes the
// identity each attempt used, injects the failures a check asks for, and
// notes attempts that the destination acknowledged in part.
type recorder struct {
	inner    sink.Sink
	identity func(*sink.Batch) string
	fail     func(attempt int) (before, after error)

	mu        sync.Mutex
	order     []string
	attempts  map[string]int
	idents    map[string][]string
	partially int
}

func (r *recorder) Kind() string { return r.inner.Kind() }

func (r *recorder) WantsBody() bool {
	bs, ok := r.inner.(sink.BodySink)
	return ok && bs.WantsBody()
}

func (r *recorder) Deliver(ctx context.Context, b *sink.Batch) error {
	r.mu.Lock()
	if r.attempts[b.ID] == 0 {
		r.order = append(r.order, b.ID)
	}
	r.attempts[b.ID]++
	n := r.attempts[b.ID]
	if r.identity != nil {
		if r.idents == nil {
			r.idents = map[string][]string{}
		}
		if id := r.identity(b); !slices.Contains(r.idents[b.ID], id) {
			r.idents[b.ID] = append(r.idents[b.ID], id)
		}
	}
	r.mu.Unlock()
	var before, after error
	if r.fail != nil {
		before, after = r.fail(n)
	}
	if before != nil {
		return before
	}
	err := r.inner.Deliver(ctx, b)
	var re *sink.RecordErrors
	if err != nil && !errors.As(err, &re) && slices.Contains(b.Acked, true) && slices.Contains(b.Acked, false) {
		r.mu.Lock()
		r.partially++
		r.mu.Unlock()
	}
	if err == nil && after != nil {
		return after
	}
	return err
}

type errRecorder struct{ *recorder }

func (r errRecorder) DeliverErrors(ctx context.Context, b *sink.ErrorBatch) error {
	return r.inner.(sink.ErrorSink).DeliverErrors(ctx, b)
}

func (r *recorder) batchIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

func (r *recorder) attemptsOf(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

func (r *recorder) identitiesOf(id string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.idents[id])
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.attempts {
		n += a
	}
	return n
}

func (r *recorder) partials() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.partially
}
