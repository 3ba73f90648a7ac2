package dashboard

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

const (
	// tailFlush is how often new tail records are pushed: a stream taking
	// thousands of records a second still makes at most 4 messages a
	// second per watched stream.
	tailFlush = 250 * time.Millisecond
	// tailBatch is the most records one tail message carries; records
	// beyond it in one flush are counted as skipped.
	tailBatch = 50
	// tailData is the most data bytes shown per record.
	tailData = 1024
	// tailBackfill is how far back a tail starts when its first watcher
	// arrives.
	tailBackfill = 10 * time.Second
)

// TailRecord is one record as the tail view shows it.
type TailRecord struct {
	ShardID        string    `json:"shard_id"`
	SequenceNumber string    `json:"seq"`
	PartitionKey   string    `json:"key"`
	Arrival        time.Time `json:"arrival"`
	Size           int       `json:"size"`
	// Data is the record as text when it is UTF-8, else base64 (Base64
	// set), clipped to 1 KiB.
	Data   string `json:"data"`
	Base64 bool   `json:"base64,omitempty"`
}

// TailBatch is the data of a "tail" message.
type TailBatch struct {
	Records []TailRecord `json:"records"`
	// Skipped counts records that arrived since the last message but did
	// not fit in it.
	Skipped int64 `json:"skipped"`
	// Sampled is true when the stream was too busy to show every record:
	// the tail then shows a sample of each interval.
	Sampled bool `json:"sampled,omitempty"`
}

// tail follows one stream while someone watches it.
type tail struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pending []TailRecord // at most tailBatch, newest last
	skipped int64
	sampled bool
}

func (t *tail) add(shardID string, recs []stream.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(recs); n > tailBatch {
		t.skipped += int64(n - tailBatch)
		recs = recs[n-tailBatch:]
	}
	for _, r := range recs {
		tr := TailRecord{ShardID: shardID, SequenceNumber: r.SequenceNumber, PartitionKey: r.PartitionKey,
			Arrival: r.ArrivalTime, Size: len(r.Data)}
		d := r.Data
		if len(d) > tailData {
			d = d[:tailData]
			// Do not call text binary because the clip cut a rune in two.
			for i := 0; i < 3 && !utf8.Valid(d); i++ {
				d = d[:len(d)-1]
			}
		}
		if utf8.Valid(d) {
			tr.Data = string(d)
		} else {
			tr.Data, tr.Base64 = base64.StdEncoding.EncodeToString(d), true
		}
		t.pending = append(t.pending, tr)
	}
	if over := len(t.pending) - tailBatch; over > 0 {
		// Shards arrive in separate batches: keep the newest across them.
		sort.SliceStable(t.pending, func(i, j int) bool { return t.pending[i].Arrival.Before(t.pending[j].Arrival) })
		t.skipped += int64(over)
		t.pending = append(t.pending[:0:0], t.pending[over:]...)
	}
}

func (t *tail) take() (TailBatch, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 && t.skipped == 0 {
		return TailBatch{}, false
	}
	b := TailBatch{Records: t.pending, Skipped: t.skipped, Sampled: t.sampled}
	t.pending, t.skipped, t.sampled = nil, 0, false
	return b, true
}

// onTopic starts a tail follower when "tail/NAME" gets its first
// subscriber and stops it when the last one leaves.
func (s *Server) onTopic(topic string, active bool) {
	name, ok := strings.CutPrefix(topic, "tail/")
	if !ok || s.ctx == nil {
		return
	}
	s.tailMu.Lock()
	defer s.tailMu.Unlock()
	t := s.tails[name]
	if !active {
		if t != nil {
			t.cancel()
			delete(s.tails, name)
			s.hub.Unretain(topic)
		}
		return
	}
	if t != nil {
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	t = &tail{name: name, cancel: cancel, done: make(chan struct{})}
	s.tails[name] = t
	now := s.deps.Now
	f := &follower{store: s.deps.Store, stream: name, log: s.log, limit: tailBatch, gap: tailFlush,
		// a new watcher sees the last seconds at once, not an empty table
		since:  func() time.Time { return now().Add(-tailBackfill) },
		fn:     func(shardID string, recs []stream.Record, _ bool) { t.add(shardID, recs) },
		sample: func(string) { t.mu.Lock(); t.sampled = true; t.mu.Unlock() }}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); defer close(t.done); f.run(ctx) }()
}

func (s *Server) flushTails() {
	s.tailMu.Lock()
	tails := make([]*tail, 0, len(s.tails))
	for _, t := range s.tails {
		tails = append(tails, t)
	}
	s.tailMu.Unlock()
	for _, t := range tails {
		b, ok := t.take()
		if !ok {
			continue
		}
		data, err := json.Marshal(b)
		if err != nil {
			continue
		}
		s.hub.Publish("tail/"+t.name, wrap("tail", t.name, data), true)
	}
}
