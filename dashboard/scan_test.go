package dashboard

import (
	"encoding/json"
	"reflect"
	"testing"
)

var plateSamples = []string{
	`{"store":"demo-store","lane":"3","plate_type":"salmon","event":"placed","plate_id":"p-000123","sensor":"lane3-ir1","ts":"2026-11-26T05:00:00.123Z"}`,
	`{"sensor":"lane3-ir1","lane":"3","ok":true,"ts":"2026-11-26T05:00:00Z"}`,
	`{"sensor":"lane3-ir1","lane":"3","ok":false,"extra":12.5e3,"n":null}`,
	` { "lane" : "4" , "event":"taken" } `,
	`{}`,
	`{"lane":"caf\u00e9"}`,
	`{"lane":"x","nested":{"a":1}}`,
	`{"lane":3}`,
	`{"ok":"yes"}`,
	`{"lane":"x"`,
	`{"lane":"x"} trailing`,
	`not json`,
	``,
	`[1,2]`,
	`{"lane":"x",}`,
	`{"ok":tru}`,
	`{"n":-}`,
}

// TestParsePlateMatchesEncodingJSON: the scanner and encoding/json agree
// on every sample, including what is an error.
func TestParsePlateMatchesEncodingJSON(t *testing.T) {
	for _, s := range plateSamples {
		var fast, slow plateMsg
		ferr := parsePlate([]byte(s), &fast)
		serr := json.Unmarshal([]byte(s), &slow)
		if (ferr == nil) != (serr == nil) {
			t.Errorf("%s: parsePlate err %v, encoding/json err %v", s, ferr, serr)
			continue
		}
		if serr == nil && !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s: parsePlate %+v, encoding/json %+v", s, fast, slow)
		}
	}
}

func FuzzParsePlate(f *testing.F) {
	for _, s := range plateSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow plateMsg
		ferr := parsePlate(b, &fast)
		serr := json.Unmarshal(b, &slow)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("%q: parsePlate err %v, encoding/json err %v", b, ferr, serr)
		}
		if serr == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: parsePlate %+v, encoding/json %+v", b, fast, slow)
		}
	})
}

func BenchmarkParsePlate(b *testing.B) {
	data := []byte(plateSamples[0])
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			var m plateMsg
			_ = parsePlate(data, &m)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			var m plateMsg
			_ = json.Unmarshal(data, &m)
		}
	})
}
