package transform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kaiten-edge/kaiten/sync/transform"
)

func recs(data ...string) []transform.Record {
	out := make([]transform.Record, len(data))
	for i, d := range data {
		out[i] = transform.Record{ID: string(rune('1' + i)), ArrivalTime: time.UnixMilli(1764133200123), Data: []byte(d)}
	}
	return out
}

func TestBuiltin(t *testing.T) {
	b, err := transform.NewBuiltin([]transform.Field{{From: "plate_type", To: "type"}, {From: "lane"}, {From: "meta.count", To: "n"}}, `event == "passed" || (count ?? 0) > 40`)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Transform(context.Background(), recs(
		`{"store":"demo-store","lane":"3","plate_type":"salmon","event":"taken","meta":{"count":2}}`,
		`{"lane":"3","plate_type":"tuna","event":"passed"}`,
		`not json`,
		`{"lane":"1","count":42}`,
		`{"lane":"2","plate_type":"ebi"}`,
	))
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.Result{
		{Result: transform.Ok, Data: []byte(`{"type":"salmon","lane":"3","n":2}`)},
		{Result: transform.Dropped},
		{Result: transform.ProcessingFailed},
		{Result: transform.Dropped},
		{Result: transform.Ok, Data: []byte(`{"type":"ebi","lane":"2"}`)},
	}
	for i, w := range want {
		if res[i].Result != w.Result || string(res[i].Data) != string(w.Data) {
			t.Errorf("record %d: %+v, want %+v", i, res[i], w)
		}
	}
	if _, err := transform.NewBuiltin(nil, `event ==`); err == nil || !strings.HasPrefix(err.Error(), "drop_if:") {
		t.Fatalf("bad expression: %v", err)
	}
	if _, err := transform.NewBuiltin(nil, `1 + 1`); err == nil {
		t.Fatal("non-boolean condition accepted")
	}
	if _, err := transform.NewBuiltin([]transform.Field{{}}, ""); err == nil {
		t.Fatal("empty field accepted")
	}
}

// lambda answers like a Firehose transformation Lambda; answer decides per record.
func lambda(t *testing.T, answer func(id string, data []byte) (string, string, bool)) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			InvocationID string `json:"invocationId"`
			Records      []struct {
				RecordID                    string `json:"recordId"`
				ApproximateArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
				Data                        []byte `json:"data"`
			} `json:"records"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.InvocationID == "" {
			t.Errorf("bad request: %v %q", err, req.InvocationID)
		}
		type rec struct {
			RecordID string `json:"recordId"`
			Result   string `json:"result"`
			Data     []byte `json:"data,omitempty"`
		}
		var out struct {
			Records []rec `json:"records"`
		}
		for _, r := range req.Records {
			if r.ApproximateArrivalTimestamp != 1764133200123 {
				t.Errorf("arrival %d", r.ApproximateArrivalTimestamp)
			}
			res, data, ok := answer(r.RecordID, r.Data)
			if ok {
				out.Records = append(out.Records, rec{RecordID: r.RecordID, Result: res, Data: []byte(data)})
			}
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
}

func TestHTTPContract(t *testing.T) {
	srv := lambda(t, func(id string, data []byte) (string, string, bool) {
		switch string(data) {
		case "drop":
			return transform.Dropped, "", true
		case "fail":
			return transform.ProcessingFailed, "", true
		case "lost":
			return "", "", false
		case "weird":
			return "Maybe", "", true
		}
		return transform.Ok, strings.ToUpper(string(data)), true
	})
	defer srv.Close()
	h := &transform.HTTP{URL: srv.URL}
	res, err := h.Transform(context.Background(), recs("a", "drop", "fail", "lost", "weird", "b"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{transform.Ok, transform.Dropped, transform.ProcessingFailed, transform.ProcessingFailed, transform.ProcessingFailed, transform.Ok}
	for i, w := range want {
		if res[i].Result != w {
			t.Errorf("record %d: %+v, want %s", i, res[i], w)
		}
	}
	if string(res[0].Data) != "A" || string(res[5].Data) != "B" {
		t.Errorf("data %q %q", res[0].Data, res[5].Data)
	}
	if !strings.Contains(res[3].Message, "missing") {
		t.Errorf("missing id message %q", res[3].Message)
	}
}

func TestHTTPFailingCalls(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "down", 503)
	}))
	defer srv.Close()
	h := &transform.HTTP{URL: srv.URL, Retries: 2, Backoff: time.Millisecond}
	res, err := h.Transform(context.Background(), recs("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3", calls.Load())
	}
	for _, r := range res {
		if r.Result != transform.ProcessingFailed || !strings.Contains(r.Message, "503") {
			t.Fatalf("%+v", r)
		}
	}
}
