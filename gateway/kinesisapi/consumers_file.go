package kinesisapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kaiten-edge/kaiten/internal/atomicfile"
	"io/fs"
	"os"
	"sort"
	"time"
)

// The enhanced fan-out consumer registry, kept across restarts as Kinesis
// keeps it: a small JSON file in the data directory, rewritten whole on
// every change (temp file, fsync, rename, fsync of the directory), so that
// a crash leaves either the old registry or the new one.

// ConsumersFile is the registry's file name in Options.DataDir.
const ConsumersFile = "kinesis-consumers.json"

// ErrConsumersFile wraps failures to read or write the registry file.
var ErrConsumersFile = errors.New("kinesisapi: consumer registry file")

const consumersFileVersion = 1

type consumersDoc struct {
	Version   int              `json:"version"`
	Consumers []consumerRecord `json:"consumers"`
}

type consumerRecord struct {
	Name      string    `json:"name"`
	ARN       string    `json:"arn"`
	StreamARN string    `json:"stream_arn"`
	Stream    string    `json:"stream"`
	Created   time.Time `json:"created"`
}

// loadConsumers fills the registry from its file, if the server has a data
// directory. A missing file is an empty registry. A file that does not
// parse is set aside (renamed *.bad) and the registry starts empty: the
// consumers register again (the KCL does so when it finds none), which
// beats a gateway that does not start. Consumers whose stream is gone, or
// was re-created, are dropped and the file rewritten.
func (s *Server) loadConsumers() error {
	if s.consFile == "" {
		return nil
	}
	data, err := os.ReadFile(s.consFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: loading: %w", ErrConsumersFile, err)
	}
	var doc consumersDoc
	if err := json.Unmarshal(data, &doc); err != nil || doc.Version != consumersFileVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", doc.Version, consumersFileVersion)
		}
		bad := s.consFile + ".bad"
		if rerr := os.Rename(s.consFile, bad); rerr != nil {
			return fmt.Errorf("%w: setting aside an unreadable %s: %w", ErrConsumersFile, s.consFile, rerr)
		}
		s.log.Error("enhanced fan-out consumers forgotten: their file does not parse; kept as "+bad, "err", err)
		return nil
	}
	s.cons.mu.Lock()
	defer s.cons.mu.Unlock()
	dropped := 0
	for _, r := range doc.Consumers {
		c := &consumer{name: r.Name, arn: r.ARN, streamARN: r.StreamARN, stream: r.Stream, created: r.Created}
		if d, err := s.b.DescribeStream(c.stream); err != nil || !sameStream(d.ARN, d.Created, c) {
			dropped++
			continue
		}
		s.cons.byARN[c.arn] = c
	}
	if dropped > 0 {
		s.log.Info("enhanced fan-out consumers of deleted streams forgotten", "count", dropped)
		if err := s.saveConsumersLocked(); err != nil {
			s.log.Error("rewriting the consumer registry", "err", err)
		}
	}
	return nil
}

// sameStream reports whether c was registered on this stream, not on an
// earlier one of the same name.
func sameStream(arn string, created time.Time, c *consumer) bool {
	return arn == c.streamARN && !created.After(c.created.Add(time.Second))
}

// saveConsumersLocked writes the registry; s.cons.mu must be held, which
// also keeps concurrent writes in order.
func (s *Server) saveConsumersLocked() error {
	if s.consFile == "" {
		return nil
	}
	doc := consumersDoc{Version: consumersFileVersion, Consumers: []consumerRecord{}}
	for _, c := range s.cons.byARN {
		doc.Consumers = append(doc.Consumers, consumerRecord{Name: c.name, ARN: c.arn, StreamARN: c.streamARN, Stream: c.stream, Created: c.created})
	}
	sort.Slice(doc.Consumers, func(i, j int) bool { return doc.Consumers[i].ARN < doc.Consumers[j].ARN })
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("%w: encoding: %w", ErrConsumersFile, err)
	}
	if err := atomicfile.WriteFile(s.consFile, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: saving: %w", ErrConsumersFile, err)
	}
	return nil
}
