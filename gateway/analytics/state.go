package analytics

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kaiten-edge/kaiten/internal/atomicfile"
	"os"
	"path/filepath"
)

// Durable state.
//
// A query's progress and its open windows must change together: if the
// per-shard positions were saved apart from the windows, a crash between
// the two would count records twice or lose them. The stream API keeps
// consumer checkpoints in Badger but offers no way to write a component's
// own state in the same transaction, so each query keeps one state file
// that holds both: the engine (per-shard positions, watermark, open
// windows) and the outbox (results and late records not yet known to be
// in their streams, with the output shards' last sequence numbers taken
// before they were first put). The file is replaced atomically (write to a
// temporary file, fsync, rename, fsync the directory), so after kill -9 or
// power loss it is either the old state or the new one.
//
// The store's checkpoint for group analytics-<query> trails the file: it
// is written after the file and only saves re-reading. On start the engine
// skips records at or before its own positions, and the outbox is
// reconciled against the output streams (what is already there is not put
// again), so each window is emitted exactly once.

const stateVersion = 1

// stateFile is the JSON layout of <state_dir>/<query>.state.
type stateFile struct {
	Version int    `json:"version"`
	Query   string `json:"query"`
	// Fingerprint is the SQL, event-time field and lateness the windows
	// were built with; when it changes, open windows are dropped (positions
	// are kept, so nothing is read twice).
	Fingerprint string       `json:"fingerprint"`
	Engine      *EngineState `json:"engine"`
	Pending     []pendingOut `json:"pending,omitempty"`
	// OutPos: output stream -> shard -> last sequence number before the
	// pending records were first put ("" = the shard was empty).
	OutPos map[string]map[string]string `json:"out_pos,omitempty"`
}

// pendingOut is one record in the outbox.
type pendingOut struct {
	Stream string `json:"stream"`
	Key    string `json:"key"`
	Data   []byte `json:"data"`
}

func statePath(dir, query string) string { return filepath.Join(dir, query+".state") }

// loadState reads a state file; a missing file is (nil, nil).
func loadState(path string) (*stateFile, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("load state %s: %w (move the file away to start the query afresh)", path, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("load state %s: version %d, want %d", path, st.Version, stateVersion)
	}
	return &st, nil
}

// saveState replaces the file at path atomically and durably.
func saveState(path string, st *stateFile) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := atomicfile.WriteFile(path, raw, 0o640); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}
