package mqtt

import (
	"testing"

	"github.com/kaiten-edge/kaiten/gateway/config"
)

// TestSampleYAML keeps sample.yaml in step with Config: it must decode
// strictly (no unknown keys) and validate.
func TestSampleYAML(t *testing.T) {
	var c Config
	if err := config.DecodeSection("sample.yaml", "mqtt", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
}
