// Package s3test runs a real S3-compatible server for tests: versitygw with
// its posix backend in a temporary directory, SigV4 root credentials, on a
// free loopback port. make test installs versitygw (scripts/test-deps.txt).
package s3test

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	gconfig "github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/internal/testutil"
	"github.com/kaiten-edge/kaiten/sync/internal/awscfg"
	"github.com/kaiten-edge/kaiten/sync/s3sink"
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:port
	Addr      string
	AccessKey string
	SecretKey string
	Dir       string
	Client    *s3.Client

	t     testing.TB
	bin   string
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  <-chan struct{}
	procs []*testutil.Proc // every start's, for the log
}

// Start starts versitygw and waits until it answers; it is stopped at
// test cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: testutil.LookTool(t, "versitygw"), Addr: testutil.FreeAddr(t),
		AccessKey: "kaitentestroot", SecretKey: "kaitentestsecret0123456789", Dir: t.TempDir()}
	s.Endpoint = "http://" + s.Addr
	s.Client = s3sink.NewClient(s.Config(""))
	s.start()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			s.mu.Lock()
			for _, p := range s.procs {
				t.Logf("versitygw log:\n%s", p.Log())
			}
			s.mu.Unlock()
		}
	})
	return s
}

// Config is an s3sink.Config for bucket on this server.
func (s *Server) Config(bucket string) s3sink.Config {
	return s3sink.Config{Bucket: bucket, PathStyle: true, Access: awscfg.Access{Endpoint: s.Endpoint, Region: "us-east-1",
		AccessKeyID: s.AccessKey, SecretAccessKey: s.SecretKey, Timeout: gconfig.Duration{Duration: 30 * time.Second}}}
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.Addr, "--quiet",
		"posix", "--nometa", s.Dir)
	// If the test binary dies (a timeout, a closed pipe), the server goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	proc := testutil.StartProc(s.t, "versitygw", cmd, 30*time.Second, func() error {
		resp, err := http.Get(s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	s.mu.Lock()
	s.procs = append(s.procs, proc)
	s.cmd, s.done = cmd, proc.Exited()
	s.mu.Unlock()
}

// Kill stops the server (SIGKILL) and waits.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same port and directory.
func (s *Server) Restart() { s.start() }

// Pause freezes the server (SIGSTOP): connections hang, as on a dead link.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.cmd.Process.Signal(sig)
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

// Objects returns every key of the bucket under prefix, sorted.
func (s *Server) Objects(ctx context.Context, bucket, prefix string) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Get returns an object's bytes.
func (s *Server) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}
