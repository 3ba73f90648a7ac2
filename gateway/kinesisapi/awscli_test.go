package kinesisapi

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// TestAWSCLI drives `kaiten run` with the AWS CLI (make test installs
// Debian's awscli): the "point --endpoint-url at the gateway" promise.
func TestAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the kaiten daemon and runs the aws CLI: make test runs it")
	}
	aws := testutil.LookTool(t, "aws")
	d := testutil.StartDaemon(t, t.TempDir())
	home := t.TempDir()
	ver, _ := exec.Command(aws, "--version").CombinedOutput()
	v2 := strings.HasPrefix(string(ver), "aws-cli/2")

	run := func(args ...string) map[string]any {
		t.Helper()
		full := append([]string{"--endpoint-url", "http://" + d.HTTPAddr, "--region", "us-east-1", "--output", "json", "kinesis"}, args...)
		if v2 {
			full = append(full, "--cli-binary-format", "raw-in-base64-out")
		}
		cmd := exec.Command(aws, full...)
		// The caller's environment (PATH, pyenv, ...) without any AWS
		// setting that could point elsewhere.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, "HOME="+home, "AWS_ACCESS_KEY_ID=AKIDCLI", "AWS_SECRET_ACCESS_KEY=cli-secret",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_CONFIG_FILE="+home+"/none", "AWS_SHARED_CREDENTIALS_FILE="+home+"/none")
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("aws kinesis %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
		var m map[string]any
		if len(strings.TrimSpace(string(out))) > 0 {
			if err := json.Unmarshal(out, &m); err != nil {
				t.Fatalf("aws kinesis %s: output is not JSON: %s", args[0], out)
			}
		}
		return m
	}

	run("create-stream", "--stream-name", "cli", "--shard-count", "2")
	run("wait", "stream-exists", "--stream-name", "cli")
	payload := `{"store":"demo-store","lane":"3","plate_type":"salmon","event":"placed"}`
	put := run("put-record", "--stream-name", "cli", "--partition-key", "demo-store/3", "--data", payload)
	shard, _ := put["ShardId"].(string)
	seq, _ := put["SequenceNumber"].(string)
	if !strings.HasPrefix(shard, "shardId-") || seq == "" {
		t.Fatalf("put-record: %v", put)
	}
	pr := run("put-records", "--stream-name", "cli", "--records", `[{"Data":"two","PartitionKey":"demo-store/3"},{"Data":"three","PartitionKey":"demo-store/3"}]`)
	if pr["FailedRecordCount"] != float64(0) {
		t.Fatalf("put-records: %v", pr)
	}
	it := run("get-shard-iterator", "--stream-name", "cli", "--shard-id", shard, "--shard-iterator-type", "AT_SEQUENCE_NUMBER", "--starting-sequence-number", seq)
	gr := run("get-records", "--shard-iterator", it["ShardIterator"].(string))
	recs, _ := gr["Records"].([]any)
	if len(recs) != 3 {
		t.Fatalf("get-records: %v", gr)
	}
	var got []string
	for _, r := range recs {
		b, err := base64.StdEncoding.DecodeString(r.(map[string]any)["Data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	if got[0] != payload || got[1] != "two" || got[2] != "three" {
		t.Fatalf("records %q", got)
	}
	ds := run("describe-stream", "--stream-name", "cli")["StreamDescription"].(map[string]any)
	if ds["StreamStatus"] != "ACTIVE" || len(ds["Shards"].([]any)) != 2 {
		t.Fatalf("describe-stream: %v", ds)
	}
	sum := run("describe-stream-summary", "--stream-name", "cli")["StreamDescriptionSummary"].(map[string]any)
	if sum["OpenShardCount"] != float64(2) {
		t.Fatalf("describe-stream-summary: %v", sum)
	}
	ls := run("list-streams")
	names, _ := json.Marshal(ls["StreamNames"])
	if !strings.Contains(string(names), `"cli"`) || !strings.Contains(string(names), `"plates"`) {
		t.Fatalf("list-streams: %s", names)
	}
	if sh := run("list-shards", "--stream-name", "cli")["Shards"].([]any); len(sh) != 2 {
		t.Fatalf("list-shards: %v", sh)
	}
	run("add-tags-to-stream", "--stream-name", "cli", "--tags", "lane=3,kind=plates")
	if tags := run("list-tags-for-stream", "--stream-name", "cli")["Tags"].([]any); len(tags) != 2 {
		t.Fatalf("list-tags-for-stream: %v", tags)
	}
	run("remove-tags-from-stream", "--stream-name", "cli", "--tag-keys", "kind")
	run("increase-stream-retention-period", "--stream-name", "cli", "--retention-period-hours", "48")
	run("decrease-stream-retention-period", "--stream-name", "cli", "--retention-period-hours", "24")
	run("split-shard", "--stream-name", "cli", "--shard-to-split", "shardId-000000000000", "--new-starting-hash-key", "85070591730234615865843651857942052864")
	run("wait", "stream-exists", "--stream-name", "cli")
	run("merge-shards", "--stream-name", "cli", "--shard-to-merge", "shardId-000000000002", "--adjacent-shard-to-merge", "shardId-000000000003")
	run("wait", "stream-exists", "--stream-name", "cli")
	us := run("update-shard-count", "--stream-name", "cli", "--target-shard-count", "4", "--scaling-type", "UNIFORM_SCALING")
	if us["TargetShardCount"] != float64(4) {
		t.Fatalf("update-shard-count: %v", us)
	}
	run("wait", "stream-exists", "--stream-name", "cli")
	// The CLI's three records are counted (deleting the stream drops the series).
	func() {
		resp, err := http.Get("http://" + d.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), `kaiten_kinesis_incoming_records_total{stream="cli"} 3`) {
			t.Fatalf("metrics lack the CLI's records:\n%.2000s", body)
		}
	}()
	run("delete-stream", "--stream-name", "cli")
	run("wait", "stream-not-exists", "--stream-name", "cli")

	// GET / is left to the dashboard.
	home2, err := http.Get("http://" + d.HTTPAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	home2.Body.Close()
	if home2.StatusCode != 200 || strings.Contains(home2.Header.Get("Content-Type"), "amz") {
		t.Fatalf("GET / answered %d %s", home2.StatusCode, home2.Header.Get("Content-Type"))
	}

}
