package mqtt

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"store/+/lane/+/plate", "store/demo-store/lane/3/plate", true},
		{"store/+/lane/+/plate", "store/demo-store/lane/3/plate/x", false},
		{"store/+/lane/+/plate", "store/demo-store/lane/plate", false},
		{"store/+/lane/+/sensor/+/status", "store/s/lane/1/sensor/lane1-ir1/status", true},
		{"store/#", "store", true},
		{"store/#", "store/a/b/c", true},
		{"store/+", "store", false},
		{"#", "a/b", true},
		{"#", "$SYS/broker/load", false},
		{"+/x", "$SYS/x", false},
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+/c", "a//c", true},
		{"+", "", true},
	}
	for _, c := range cases {
		if got := Match(c.filter, c.topic); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestValidFilter(t *testing.T) {
	for _, f := range []string{"a/b", "+", "#", "a/+/b/#", "store/+/lane/+/plate"} {
		if err := ValidFilter(f); err != nil {
			t.Errorf("ValidFilter(%q) = %v", f, err)
		}
	}
	for _, f := range []string{"", "a/#/b", "a+/b", "a/b#", "a/++"} {
		if err := ValidFilter(f); err == nil {
			t.Errorf("ValidFilter(%q) = nil, want an error", f)
		}
	}
}

func TestTemplate(t *testing.T) {
	obj := func(s string) map[string]json.RawMessage {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	payload := obj(`{"store":"demo-store","lane":3,"ok":true,"meta":{"zone":"north","n":null},"empty":"","arr":[1]}`)
	cases := []struct {
		tmpl, topic string
		obj         map[string]json.RawMessage
		want        string
		wantErr     string
	}{
		{"{1}/{3}", "store/demo-store/lane/3/plate", nil, "demo-store/3", ""},
		{"{0}", "store/x", nil, "store", ""},
		{"lane-{3}", "store/demo-store/lane/7/plate", nil, "lane-7", ""},
		{"{store}/{lane}", "t", payload, "demo-store/3", ""},
		{"{meta.zone}-{ok}", "t", payload, "north-true", ""},
		{"{5}", "a/b", nil, "", "only 2 segments"},
		{"{store}", "t", nil, "", "not a JSON object"},
		{"{missing}", "t", payload, "", "no such field"},
		{"{meta}", "t", payload, "", "object or array"},
		{"{arr}", "t", payload, "", "object or array"},
		{"{meta.n}", "t", payload, "", "null"},
		{"{empty}", "t", payload, "", "empty string"},
		{"{store.x}", "t", payload, "", "not an object"},
		{"{1}", "a/", nil, "", "key is empty"},
		{"{0}", strings.Repeat("x", 257), nil, "", "more than 256"},
	}
	for _, c := range cases {
		tp, err := ParseTemplate(c.tmpl)
		if err != nil {
			t.Fatalf("ParseTemplate(%q): %v", c.tmpl, err)
		}
		got, err := tp.Fill(c.topic, c.obj)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errors.Is(err, ErrTemplate) {
				t.Errorf("%q on %q: err %v, want one with %q", c.tmpl, c.topic, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q on %q = %q, %v; want %q", c.tmpl, c.topic, got, err, c.want)
		}
	}
	for _, bad := range []string{"{", "}", "{}", "a{b", "{-1}", "{a..b}", "{a b}"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("ParseTemplate(%q) = nil error", bad)
		}
	}
	tp, _ := ParseTemplate("{1}/{3}")
	if tp.NeedsPayload {
		t.Error("a topic-only template must not need the payload")
	}
}

func FuzzTemplate(f *testing.F) {
	f.Add("{1}/{store}", "store/a/lane/1", []byte(`{"store":"x"}`))
	f.Add("{a.b}", "t", []byte(`{"a":{"b":2}}`))
	f.Fuzz(func(t *testing.T, tmpl, topic string, payload []byte) {
		tp, err := ParseTemplate(tmpl)
		if err != nil {
			return
		}
		var obj map[string]json.RawMessage
		_ = json.Unmarshal(payload, &obj)
		k, err := tp.Fill(topic, obj)
		if err == nil && (k == "" || len([]rune(k)) > 256) {
			t.Fatalf("Fill gave an invalid key %q", k)
		}
	})
}
