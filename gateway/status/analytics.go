package status

import "encoding/json"

// AnalyticsEntry is the board name under which the continuous queries
// publish an Analytics value.
const AnalyticsEntry = "analytics"

// Analytics is the board entry of the continuous queries (gateway/analytics
// publishes it; the dashboard reads it): every query's state, in start
// order.
type Analytics struct {
	Queries []Query `json:"queries"`
}

// Query is one continuous query's live state, as the status board, the
// analytics admin endpoint and the dashboard's results card show it.
type Query struct {
	Name        string           `json:"name"`
	SQL         string           `json:"sql"`
	Source      string           `json:"source"`
	Output      string           `json:"output"`
	Window      string           `json:"window"`
	Columns     []string         `json:"columns"`
	EventTime   string           `json:"event_time,omitempty"`
	LatenessMs  int64            `json:"allowed_lateness_ms"`
	State       string           `json:"state"` // starting, running, error, stopped
	Error       string           `json:"error,omitempty"`
	Watermark   string           `json:"watermark,omitempty"`
	OpenWindows int              `json:"open_windows"`
	In          int64            `json:"records_in"`
	Out         int64            `json:"records_out"`
	Late        int64            `json:"records_late"`
	Filtered    int64            `json:"records_filtered"`
	Skipped     map[string]int64 `json:"skipped,omitempty"`
	BehindMs    int64            `json:"millis_behind_latest"`
	// Recent holds the newest results, oldest first.
	Recent []json.RawMessage `json:"recent"`
}
