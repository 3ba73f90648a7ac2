package security

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

const (
	keyID  = "AKIDKAITENSEC"
	secret = "wJalrXUtnFEMI-secret-7d1e9f"
)

func sigv4Config() string {
	return fmt.Sprintf(`
log: {level: debug}
kinesis:
  auth:
    access_keys:
      - access_key_id: %s
        secret_access_key: %s
`, keyID, secret)
}

// signedReq builds a raw Kinesis JSON request signed by the SDK's own
// SigV4 signer as of at, with the key id and secret given.
func signedReq(t *testing.T, addr, op, body, id, sec string, at time.Time) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: id, SecretAccessKey: sec}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	return req
}

// replay sends a copy of req with body (same headers, same signature).
func replay(t *testing.T, req *http.Request, body string) *http.Response {
	t.Helper()
	r2, err := http.NewRequest(req.Method, req.URL.String(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r2.Header = req.Header.Clone()
	resp, err := http.DefaultClient.Do(r2)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestSigV4Rejections runs a daemon with one access key and checks that a
// correctly signed SDK client works and every forgery is refused with the
// AWS error code, without touching the stream.
func TestSigV4Rejections(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	d := daemon(t, sigv4Config())
	ctx := ctxT(t)

	good := kinesisClient(d.HTTPAddr, keyID, secret)
	if _, err := good.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("correctly signed ListStreams: %v", err)
	}
	if _, err := good.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("plates"),
		PartitionKey: aws.String("k"), Data: []byte("signed")}); err != nil {
		t.Fatalf("correctly signed PutRecord: %v", err)
	}

	t.Run("unknown key", func(t *testing.T) {
		_, err := kinesisClient(d.HTTPAddr, "AKIDNOBODY", secret).ListStreams(ctx, &kinesis.ListStreamsInput{})
		wantCode(t, err, "UnrecognizedClientException")
	})
	t.Run("wrong secret", func(t *testing.T) {
		_, err := kinesisClient(d.HTTPAddr, keyID, secret+"x").PutRecord(ctx, &kinesis.PutRecordInput{
			StreamName: aws.String("plates"), PartitionKey: aws.String("k"), Data: []byte("forged")})
		wantCode(t, err, "InvalidSignatureException")
	})
	t.Run("unsigned", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.HTTPAddr+"/", strings.NewReader(`{}`))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if st, typ, _ := awsError(t, resp); st != http.StatusForbidden || typ != "MissingAuthenticationTokenException" {
			t.Fatalf("unsigned: got %d %s", st, typ)
		}
	})
	t.Run("tampered body", func(t *testing.T) {
		body := `{"StreamName":"plates","PartitionKey":"k","Data":"c2lnbmVk"}`
		req := signedReq(t, d.HTTPAddr, "PutRecord", body, keyID, secret, time.Now())
		resp := replay(t, req, strings.Replace(body, `"k"`, `"x"`, 1))
		if st, typ, _ := awsError(t, resp); st != http.StatusBadRequest || typ != "InvalidSignatureException" {
			t.Fatalf("tampered body: got %d %s", st, typ)
		}
	})
	t.Run("expired date", func(t *testing.T) {
		// Signed 6 minutes ago: outside the 5-minute window.
		req := signedReq(t, d.HTTPAddr, "ListStreams", `{}`, keyID, secret, time.Now().Add(-6*time.Minute))
		resp := replay(t, req, `{}`)
		st, typ, msg := awsError(t, resp)
		if st != http.StatusBadRequest || typ != "InvalidSignatureException" || !strings.Contains(msg, "expired") {
			t.Fatalf("expired date: got %d %s %q", st, typ, msg)
		}
	})
	t.Run("future date", func(t *testing.T) {
		req := signedReq(t, d.HTTPAddr, "ListStreams", `{}`, keyID, secret, time.Now().Add(6*time.Minute))
		if st, typ, _ := awsError(t, replay(t, req, `{}`)); st != http.StatusBadRequest || typ != "InvalidSignatureException" {
			t.Fatalf("future date: got %d %s", st, typ)
		}
	})
	t.Run("expired presigned URL", func(t *testing.T) {
		body := `{}`
		req, _ := http.NewRequest(http.MethodPost, "http://"+d.HTTPAddr+"/?X-Amz-Expires=60", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		sum := sha256.Sum256([]byte(body))
		u, hdr, err := v4.NewSigner().PresignHTTP(ctx, aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}, req,
			hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now().Add(-2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
		out.Header = hdr.Clone()
		out.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		out.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			t.Fatal(err)
		}
		st, typ, msg := awsError(t, resp)
		if st != http.StatusBadRequest || typ != "InvalidSignatureException" || !strings.Contains(msg, "expired") {
			t.Fatalf("expired presigned URL: got %d %s %q", st, typ, msg)
		}
	})
	t.Run("replay outside the window", func(t *testing.T) {
		// A request signed 5 minutes minus 3 seconds ago is still inside
		// the window: the gateway takes it. The very same bytes sent again
		// a few seconds later fall outside and must be refused.
		body := `{"StreamName":"plates","PartitionKey":"replayed","Data":"cmVwbGF5"}`
		req := signedReq(t, d.HTTPAddr, "PutRecord", body, keyID, secret, time.Now().Add(-5*time.Minute+3*time.Second))
		resp := replay(t, req, body)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("inside the window: got %d %s", resp.StatusCode, b)
		}
		testutil.WaitFor(t, 15*time.Second, func() error {
			resp := replay(t, req, body)
			st, typ, msg := awsError(t, resp)
			if st == http.StatusOK {
				return fmt.Errorf("replay still accepted")
			}
			if st != http.StatusBadRequest || typ != "InvalidSignatureException" || !strings.Contains(msg, "expired") {
				t.Fatalf("replay: got %d %s %q", st, typ, msg)
			}
			return nil
		})
	})

	// Nothing forged reached the stream: only the one good record and the
	// records the in-window request put.
	n := 0
	var forged int
	desc, err := good.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("plates")})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range desc.Shards {
		it, err := good.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("plates"),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		out, err := good.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			n++
			if bytes.Equal(r.Data, []byte("forged")) || aws.ToString(r.PartitionKey) == "x" {
				forged++
			}
		}
	}
	if forged != 0 || n < 2 {
		t.Fatalf("stream holds %d records, %d forged; want the signed ones only", n, forged)
	}
}

// TestSigV4RegionFollowsStore: with no kinesis.auth.region, signatures
// must be scoped to store.region, the region the gateway's ARNs name.
func TestSigV4RegionFollowsStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon: make test runs it")
	}
	d := daemon(t, sigv4Config()+"store:\n  region: eu-west-1\n")
	ctx := ctxT(t)
	client := func(region string) *kinesis.Client {
		return testutil.KinesisClient(d.HTTPAddr, testutil.KinesisRegion(region), testutil.KinesisKeys(keyID, secret), testutil.KinesisSDKRetries(0))
	}
	out, err := client("eu-west-1").ListStreams(ctx, &kinesis.ListStreamsInput{})
	if err != nil {
		t.Fatalf("a client in the store's region: %v", err)
	}
	if len(out.StreamSummaries) == 0 || !strings.Contains(aws.ToString(out.StreamSummaries[0].StreamARN), ":eu-west-1:") {
		t.Fatalf("stream summaries %+v: want ARNs in eu-west-1", out.StreamSummaries)
	}
	_, err = client("us-east-1").ListStreams(ctx, &kinesis.ListStreamsInput{})
	wantCode(t, err, "InvalidSignatureException")
}
