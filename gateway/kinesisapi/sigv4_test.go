package kinesisapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"go.yaml.in/yaml/v3"

	"github.com/kaiten-edge/kaiten/gateway/config"
)

var testKeys = Config{Auth: AuthConfig{AccessKeys: []AccessKey{{AccessKeyID: "AKIDKAITEN", SecretAccessKey: "s3cr3t/with+chars"}}}}

// signed builds a request signed by the SDK's own SigV4 signer.
func signed(t *testing.T, url, op, body, key, secret string, at time.Time, presign bool) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	req.Header.Set("Content-Type", ContentTypeJSON)
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
	s := v4.NewSigner()
	if !presign {
		if err := s.SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", at); err != nil {
			t.Fatal(err)
		}
		return req
	}
	q := req.URL.Query()
	q.Set("X-Amz-Expires", "300")
	req.URL.RawQuery = q.Encode()
	u, hdr, err := s.PresignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	out.Header = hdr.Clone()
	out.Header.Set("X-Amz-Target", TargetPrefix+op)
	out.Header.Set("Content-Type", ContentTypeJSON)
	return out
}

func do(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestSigV4(t *testing.T) {
	g := newGateway(t, testKeys)
	ctx := ctxT(t)
	good := g.client("AKIDKAITEN", "s3cr3t/with+chars")
	must[*kinesis.CreateStreamOutput](t)(good.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("signed"), ShardCount: aws.Int32(1)}))
	must[*kinesis.PutRecordOutput](t)(good.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("signed"), PartitionKey: aws.String("k"), Data: []byte("hello")}))

	_, err := g.client("AKIDKAITEN", "wrong").ListStreams(ctx, &kinesis.ListStreamsInput{})
	wantCode(t, err, "InvalidSignatureException")
	_, err = g.client("AKIDOTHER", "s3cr3t/with+chars").ListStreams(ctx, &kinesis.ListStreamsInput{})
	wantCode(t, err, "UnrecognizedClientException")
	// The right key, signed for another region (the SDK signs with its own).
	_, err = g.clientIn("eu-west-1", "AKIDKAITEN", "s3cr3t/with+chars").ListStreams(ctx, &kinesis.ListStreamsInput{})
	if ae := wantCode(t, err, "InvalidSignatureException"); ae.ErrorMessage() != "Credential should be scoped to a valid region, not 'eu-west-1'." {
		t.Fatalf("wrong region: message %q", ae.ErrorMessage())
	}

	now := time.Now()
	body := `{"StreamName":"signed"}`
	if st, m := do(t, signed(t, g.url, "DescribeStreamSummary", body, "AKIDKAITEN", "s3cr3t/with+chars", now, false)); st != 200 {
		t.Fatalf("header-signed: %d %v", st, m)
	}
	if st, m := do(t, signed(t, g.url, "DescribeStreamSummary", body, "AKIDKAITEN", "s3cr3t/with+chars", now, true)); st != 200 {
		t.Fatalf("presigned: %d %v", st, m)
	}
	// Expired or future signatures.
	for _, at := range []time.Time{now.Add(-20 * time.Minute), now.Add(20 * time.Minute)} {
		st, m := do(t, signed(t, g.url, "DescribeStreamSummary", body, "AKIDKAITEN", "s3cr3t/with+chars", at, false))
		if st != 400 || m["__type"] != ExInvalidSignature || !strings.Contains(m["message"].(string), "Signature") {
			t.Fatalf("signature at %v: %d %v", at, st, m)
		}
	}
	st, m := do(t, signed(t, g.url, "DescribeStreamSummary", body, "AKIDKAITEN", "s3cr3t/with+chars", now.Add(-10*time.Minute), true))
	if st != 400 || m["__type"] != ExInvalidSignature || !strings.Contains(m["message"].(string), "expired") {
		t.Fatalf("expired presign: %d %v", st, m)
	}
	// A body changed after signing is refused.
	req := signed(t, g.url, "PutRecord", `{"StreamName":"signed","PartitionKey":"k","Data":"aGVsbG8="}`, "AKIDKAITEN", "s3cr3t/with+chars", now, false)
	req.Body = io.NopCloser(strings.NewReader(`{"StreamName":"signed","PartitionKey":"k","Data":"ZXZpbCE="}`))
	if st, m := do(t, req); st != 400 || m["__type"] != ExInvalidSignature {
		t.Fatalf("tampered body: %d %v", st, m)
	}
	// A header changed after signing is refused.
	req = signed(t, g.url, "DescribeStreamSummary", body, "AKIDKAITEN", "s3cr3t/with+chars", now, false)
	req.Header.Set("X-Amz-Target", TargetPrefix+"DeleteStream")
	if st, m := do(t, req); st != 400 || m["__type"] != ExInvalidSignature {
		t.Fatalf("tampered target: %d %v", st, m)
	}
	// Unsigned, even from loopback, is refused once keys are configured.
	st, _, b := call(t, g.url, "ListStreams", ContentTypeJSON, []byte(`{}`))
	if st != 403 || !bytes.Contains(b, []byte(ExMissingAuthToken)) {
		t.Fatalf("unsigned: %d %s", st, b)
	}
	st, _, b = call(t, g.url, "ListStreams", ContentTypeJSON, []byte(`{}`), "Authorization", "AWS4-HMAC-SHA256 Credential=AKIDKAITEN/x")
	if st != 400 || !bytes.Contains(b, []byte(ExIncompleteSignature)) {
		t.Fatalf("incomplete: %d %s", st, b)
	}
	// Nothing was written by the refused requests: one record only.
	it := must[*kinesis.GetShardIteratorOutput](t)(good.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("signed"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: "TRIM_HORIZON"}))
	out := must[*kinesis.GetRecordsOutput](t)(good.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}))
	if len(out.Records) != 1 {
		t.Fatalf("%d records stored, want 1", len(out.Records))
	}
}

// TestSigV4Region: a gateway set to another region takes signatures for
// that region only.
func TestSigV4Region(t *testing.T) {
	cfg := testKeys
	cfg.Auth.Region = "ap-southeast-2"
	g := newGateway(t, cfg)
	ctx := ctxT(t)
	must[*kinesis.ListStreamsOutput](t)(g.clientIn("ap-southeast-2", "AKIDKAITEN", "s3cr3t/with+chars").ListStreams(ctx, &kinesis.ListStreamsInput{}))
	_, err := g.client("AKIDKAITEN", "s3cr3t/with+chars").ListStreams(ctx, &kinesis.ListStreamsInput{})
	if ae := wantCode(t, err, "InvalidSignatureException"); ae.ErrorMessage() != "Credential should be scoped to a valid region, not 'us-east-1'." {
		t.Fatalf("default-region client: message %q", ae.ErrorMessage())
	}
	// Without keys nothing is verified, so the region does not matter.
	open := newGateway(t, Config{Auth: AuthConfig{Region: "ap-southeast-2"}})
	must[*kinesis.ListStreamsOutput](t)(open.client("AKIDANY", "any").ListStreams(ctx, &kinesis.ListStreamsInput{}))
}

// TestLoopbackOnlyWithoutKeys checks the default: no keys, so requests from
// other hosts are refused, loopback ones accepted signed or not.
func TestLoopbackOnlyWithoutKeys(t *testing.T) {
	g := newGateway(t, Config{})
	serve := func(h http.Handler, remote string) int {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		r.Header.Set("X-Amz-Target", TargetPrefix+"ListStreams")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=ANY/20250101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=00")
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for remote, want := range map[string]int{"127.0.0.1:5000": 200, "[::1]:5000": 200, "192.0.2.10:5000": 403, "[2001:db8::1]:5000": 403} {
		if got := serve(g.srv, remote); got != want {
			t.Errorf("from %s: %d, want %d", remote, got, want)
		}
	}
	open, err := New(g.store, Options{Config: Config{Auth: AuthConfig{AllowRemoteUnsigned: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := serve(open, "192.0.2.10:5000"); got != 200 {
		t.Errorf("allow_remote_unsigned: %d", got)
	}
	if open.Status().Auth != "open" || g.srv.Status().Auth != "loopback" {
		t.Errorf("status auth %q %q", open.Status().Auth, g.srv.Status().Auth)
	}
}

func TestConfigValidation(t *testing.T) {
	bad := Config{MaxBodyBytes: 10, CORSOrigins: []string{""},
		Auth: AuthConfig{MaxClockSkew: config.Duration{Duration: -time.Second}, Region: "US East 1",
			AccessKeys: []AccessKey{{AccessKeyID: "a!", SecretAccessKey: ""}, {AccessKeyID: "a!", SecretAccessKey: "x"}}}}
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, key := range []string{"kinesis.max_body_bytes", "kinesis.cors_origins[0]", "kinesis.auth.max_clock_skew", "kinesis.auth.region",
		"kinesis.auth.access_keys[0].access_key_id", "kinesis.auth.access_keys[0].secret_access_key", "kinesis.auth.access_keys[1].access_key_id: \"a!\" is listed twice"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
	if strings.Contains(err.Error(), "secret_access_key: x") || strings.Contains(AccessKey{"AKID", "hush"}.String(), "hush") {
		t.Error("a secret leaked into an error or String")
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	// The sample decodes strictly into Config and holds the defaults.
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(SampleYAML), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	if len(root.Content) != 2 || root.Content[0].Value != "kinesis" {
		t.Fatalf("sample.yaml: want one kinesis section")
	}
	var sample Config
	if err := config.Decode("kinesis", root.Content[1], &sample); err != nil {
		t.Fatal(err)
	}
	if err := sample.Validate(); err != nil {
		t.Fatal(err)
	}
	def := (Config{}).withDefaults()
	if sample.MaxBodyBytes != def.MaxBodyBytes || sample.Auth.MaxClockSkew != def.Auth.MaxClockSkew || sample.Auth.Region != def.Auth.Region ||
		len(sample.CORSOrigins) != 1 || sample.CORSOrigins[0] != "*" || sample.Disabled || sample.Auth.AllowRemoteUnsigned {
		t.Fatalf("sample.yaml does not show the defaults: %+v", sample)
	}
}
