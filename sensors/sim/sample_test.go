package sim

import (
	"os"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/config"
)

// TestSampleYAML keeps sample.yaml in step with Config: it must decode
// strictly (no unknown keys) and validate.
func TestSampleYAML(t *testing.T) {
	raw, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	node, ok := doc["sim"]
	if !ok {
		t.Fatal("sample.yaml has no sim section")
	}
	var c Config
	if err := config.Decode("sim", &node, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
}
