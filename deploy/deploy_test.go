package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/app"
	"github.com/kaiten-edge/kaiten/internal/testutil"
)

func checkConfig(t *testing.T, path string) {
	t.Helper()
	out, err := exec.Command(testutil.KaitenBinary(t), "check-config", "--config", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config ok") {
		t.Fatalf("kaiten check-config --config %s: %v\n%s", path, err, out)
	}
}

func TestExampleConfigChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the kaiten binary to run check-config: make test runs it")
	}
	checkConfig(t, filepath.Join(testutil.RepoRoot(t), "deploy", "kaiten.example.yaml"))
}

// keyPaths lists the mapping keys of a YAML document as dotted paths, with
// [] for list items: streams[].name, sync[].s3.bucket.
func keyPaths(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			out[p] = true
			keyPaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			keyPaths(c, prefix+"[]", out)
		}
	}
}

func parsePaths(t *testing.T, path string) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	out := map[string]bool{}
	keyPaths(&doc, "", out)
	return out
}

// structPaths lists the yaml keys of a config struct the same way.
func structPaths(t reflect.Type, prefix string, out map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer:
		structPaths(t.Elem(), prefix, out)
	case reflect.Slice:
		structPaths(t.Elem(), prefix+"[]", out)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				if f.Anonymous {
					structPaths(f.Type, prefix, out)
				}
				continue
			}
			p := tag
			if prefix != "" {
				p = prefix + "." + tag
			}
			out[p] = true
			if f.Type.Kind() == reflect.Struct && f.Type.NumField() == 1 && f.Type.Field(0).Anonymous {
				continue // a wrapper such as config.Duration
			}
			structPaths(f.Type, p, out)
		}
	}
}

// The example documents every key of the daemon's own sections and every
// key of every component's sample.yaml.
func TestExampleConfigHasEveryKey(t *testing.T) {
	root := testutil.RepoRoot(t)
	example := parsePaths(t, filepath.Join(root, "deploy", "kaiten.example.yaml"))
	own := map[string]bool{}
	structPaths(reflect.TypeOf(app.Config{}), "", own)
	var missing []string
	for p := range own {
		if !example[p] {
			missing = append(missing, p+" (gateway/app.Config)")
		}
	}
	samples, _ := filepath.Glob(filepath.Join(root, "*", "*", "sample.yaml"))
	more, _ := filepath.Glob(filepath.Join(root, "*", "sample.yaml"))
	deeper, _ := filepath.Glob(filepath.Join(root, "*", "*", "*", "sample.yaml"))
	samples = append(append(samples, more...), deeper...)
	for _, s := range samples {
		rel, _ := filepath.Rel(root, s)
		if ok, _ := filepath.Match("sync/*/sample.yaml", filepath.ToSlash(rel)); ok {
			continue // a destination's sample: sync/config checks it is in sync/sample.yaml
		}
		for p := range parsePaths(t, s) {
			if !example[p] {
				missing = append(missing, fmt.Sprintf("%s (%s)", p, rel))
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("deploy/kaiten.example.yaml lacks %d keys:\n%s", len(missing), strings.Join(missing, "\n"))
	}
}

func TestFleetRender(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the kaiten binary and runs the render script: make test runs it")
	}
	root := testutil.RepoRoot(t)
	script := filepath.Join(root, "deploy", "fleet", "render.sh")
	out := t.TempDir()
	secret := `s3cr"et\with&odd chars`
	cmd := exec.Command(script, "-o", out, "-k", testutil.KaitenBinary(t))
	cmd.Env = append(os.Environ(), "S3_SECRET_ACCESS_KEY="+secret)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render.sh: %v\n%s", err, b)
	}
	envs, _ := filepath.Glob(filepath.Join(root, "deploy", "fleet", "stores", "*.env"))
	if len(envs) < 2 {
		t.Fatalf("want at least two example stores, have %v", envs)
	}
	for _, e := range envs {
		store := strings.TrimSuffix(filepath.Base(e), ".env")
		path := filepath.Join(out, store, "kaiten.yaml")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600 (it holds credentials)", path, fi.Mode().Perm())
		}
		raw, _ := os.ReadFile(path)
		if strings.Contains(string(raw), "${") {
			t.Errorf("%s: unfilled placeholder", path)
		}
		var cfg struct {
			StoreID string `yaml:"store_id"`
			Sync    []struct {
				S3 struct {
					Prefix string `yaml:"prefix"`
					Secret string `yaml:"secret_access_key"`
				} `yaml:"s3"`
			} `yaml:"sync"`
		}
		if err := yaml.Unmarshal(raw, &cfg); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if cfg.StoreID != store || len(cfg.Sync) == 0 || cfg.Sync[0].S3.Prefix != "stores/"+store+"/plates/" {
			t.Errorf("%s: store_id %q, sync %+v", path, cfg.StoreID, cfg.Sync)
		}
		if cfg.Sync[0].S3.Secret != secret {
			t.Errorf("%s: secret %q, want %q from the environment, intact", path, cfg.Sync[0].S3.Secret, secret)
		}
	}

	// A store file missing a value is an error that names it.
	stores := t.TempDir()
	if err := os.WriteFile(filepath.Join(stores, "shop-x.env"), []byte("STORE_ID=shop-x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(script, "-s", stores, "-o", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "no value for ${MQTT_BROKER}") {
		t.Fatalf("missing value: %v\n%s", err, b)
	}
}
