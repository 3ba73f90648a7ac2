package delivery

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kaiten-edge/kaiten/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
)

// intent is the batch a shard is delivering, written (and synced) before
// the first attempt. After a crash between the destination's acknowledgement
// and the checkpoint, the restarted delivery stream rebuilds exactly this
// batch, so it gets the same identity and overwrites instead of duplicating.
type intent struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

func (d *Stream) intentPath(shardID string) string {
	return filepath.Join(d.cfg.StateDir, shardID+".intent")
}

func (d *Stream) saveIntent(shardID string, in intent) error {
	if d.cfg.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(d.cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("intent: %w", err)
	}
	raw, _ := json.Marshal(in)
	path := d.intentPath(shardID)
	if err := atomicfile.WriteFile(path, raw, 0o640); err != nil {
		return fmt.Errorf("intent: %w", err)
	}
	return nil
}

func (d *Stream) loadIntent(shardID string) *intent {
	if d.cfg.StateDir == "" {
		return nil
	}
	raw, err := os.ReadFile(d.intentPath(shardID))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("reading delivery intent", "shard", shardID, "err", err)
		}
		return nil
	}
	var in intent
	if err := json.Unmarshal(raw, &in); err != nil || in.First == "" || in.Last == "" {
		d.log.Warn("ignoring a damaged delivery intent", "shard", shardID)
		return nil
	}
	return &in
}
