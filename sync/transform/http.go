package transform

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HTTP calls a transformation endpoint with the Firehose data-transformation
// contract: it POSTs
//
//	{"invocationId":"…","records":[{"recordId":"…","approximateArrivalTimestamp":ms,"data":"base64"}]}
//
// and expects
//
//	{"records":[{"recordId":"…","result":"Ok|Dropped|ProcessingFailed","data":"base64"}]}
//
// A record whose id is missing from the answer, duplicated, or unknown, or
// whose result or data is invalid, is ProcessingFailed. A failed call
// (network error, non-2xx, undecodable answer) is retried Retries times with
// a doubling backoff, then every record of it is ProcessingFailed.
type HTTP struct {
	// URL is the endpoint. Required.
	URL string
	// Client makes the requests. Default: a client with Timeout.
	Client *http.Client
	// Timeout bounds one call. Default 60 s (Firehose's Lambda default is 3 s
	// of Lambda time plus the invocation; an edge box is slower).
	Timeout time.Duration
	// Retries is how many times a failed call is retried. Default 3 (as
	// Firehose); negative means none.
	Retries int
	// Backoff is the first retry's wait, doubling after. Default 1 s.
	Backoff time.Duration
	// MaxResponseBytes bounds the answer. Default 64 MiB.
	MaxResponseBytes int64
}

type httpRequest struct {
	InvocationID string          `json:"invocationId"`
	Records      []httpReqRecord `json:"records"`
}

type httpReqRecord struct {
	RecordID                    string `json:"recordId"`
	ApproximateArrivalTimestamp int64  `json:"approximateArrivalTimestamp"`
	Data                        []byte `json:"data"`
}

type httpResponse struct {
	Records []httpRespRecord `json:"records"`
}

type httpRespRecord struct {
	RecordID string  `json:"recordId"`
	Result   string  `json:"result"`
	Data     *[]byte `json:"data"`
}

// Transform implements Transformer. Its error is always nil unless ctx
// ends: call failures become ProcessingFailed results.
func (h *HTTP) Transform(ctx context.Context, recs []Record) ([]Result, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	req := httpRequest{InvocationID: newID(), Records: make([]httpReqRecord, len(recs))}
	for i, r := range recs {
		req.Records[i] = httpReqRecord{RecordID: r.ID, ApproximateArrivalTimestamp: r.ArrivalTime.UnixMilli(), Data: r.Data}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("transform: %w", err)
	}
	retries := h.Retries
	if retries == 0 {
		retries = 3
	}
	if retries < 0 {
		retries = 0
	}
	wait := h.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		var resp httpResponse
		resp, lastErr = h.call(ctx, body)
		if lastErr == nil {
			return match(recs, resp), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	out := make([]Result, len(recs))
	for i := range out {
		out[i] = Result{Result: ProcessingFailed, Message: fmt.Sprintf("transform call failed after %d attempts: %v", retries+1, lastErr)}
	}
	return out, nil
}

func (h *HTTP) call(ctx context.Context, body []byte) (httpResponse, error) {
	var out httpResponse
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	limit := h.MaxResponseBytes
	if limit <= 0 {
		limit = 64 << 20
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return out, err
	}
	if int64(len(raw)) > limit {
		return out, fmt.Errorf("answer larger than %d bytes", limit)
	}
	if resp.StatusCode/100 != 2 {
		return out, fmt.Errorf("status %s", resp.Status)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("answer is not the transformation JSON: %w", err)
	}
	return out, nil
}

// match pairs answers with records by id.
func match(recs []Record, resp httpResponse) []Result {
	idx := make(map[string]int, len(recs))
	for i, r := range recs {
		idx[r.ID] = i
	}
	out := make([]Result, len(recs))
	seen := make([]bool, len(recs))
	for _, a := range resp.Records {
		i, ok := idx[a.RecordID]
		if !ok {
			continue // unknown ids are ignored; their records stay unanswered
		}
		if seen[i] {
			out[i] = Result{Result: ProcessingFailed, Message: "recordId " + a.RecordID + " answered twice"}
			continue
		}
		seen[i] = true
		switch a.Result {
		case Ok:
			if a.Data == nil {
				out[i] = Result{Result: ProcessingFailed, Message: "result Ok without data"}
			} else {
				out[i] = Result{Result: Ok, Data: *a.Data}
			}
		case Dropped:
			out[i] = Result{Result: Dropped}
		case ProcessingFailed:
			out[i] = Result{Result: ProcessingFailed, Message: "transform returned ProcessingFailed"}
		default:
			out[i] = Result{Result: ProcessingFailed, Message: fmt.Sprintf("invalid result %q", a.Result)}
		}
	}
	for i := range out {
		if !seen[i] {
			out[i] = Result{Result: ProcessingFailed, Message: "recordId " + recs[i].ID + " missing from the transform's answer"}
		}
	}
	return out
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}
