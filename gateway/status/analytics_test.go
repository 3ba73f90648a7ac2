package status

import (
	"encoding/json"
	"testing"
)

// TestAnalyticsJSON pins the analytics entry's JSON, which the status
// endpoint, the analytics admin endpoint and the dashboard page read.
func TestAnalyticsJSON(t *testing.T) {
	a := Analytics{Queries: []Query{{Name: "q", SQL: "SELECT 1", Source: "plates", Output: "plate-stats",
		Window: "tumbling 1m0s", Columns: []string{"lane"}, LatenessMs: 5000, State: "running", OpenWindows: 2,
		In: 10, Out: 3, Late: 1, Filtered: 4, BehindMs: 250, Recent: []json.RawMessage{json.RawMessage(`{"lane":"1"}`)}}}}
	want := `{"queries":[{"name":"q","sql":"SELECT 1","source":"plates","output":"plate-stats","window":"tumbling 1m0s",` +
		`"columns":["lane"],"allowed_lateness_ms":5000,"state":"running","open_windows":2,"records_in":10,"records_out":3,` +
		`"records_late":1,"records_filtered":4,"millis_behind_latest":250,"recent":[{"lane":"1"}]}]}`
	b, err := json.Marshal(a)
	if err != nil || string(b) != want {
		t.Fatalf("got %s, %v\nwant %s", b, err, want)
	}
	var back Analytics
	if err := json.Unmarshal(b, &back); err != nil || back.Queries[0].BehindMs != 250 || back.Queries[0].Output != "plate-stats" {
		t.Fatalf("decode: %+v, %v", back, err)
	}
}
