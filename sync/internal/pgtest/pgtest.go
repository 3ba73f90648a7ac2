// Package pgtest runs a real PostgreSQL server for tests: Debian's
// binaries (initdb, postgres) on a fresh cluster in a temporary directory,
// listening on a free loopback port, with password authentication for one
// superuser. make test installs the package (scripts/test-deps.txt).
//
// PostgreSQL refuses to run as root, and tests run as root in CI: when the
// test process is root, the cluster's directory is given to the
// "postgres" system user (created by Debian's package) and initdb and
// postgres run under that user's ids.
package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kaiten-edge/kaiten/internal/testutil"
)

// User and Password are the superuser's credentials in every test cluster.
const (
	User     = "kaiten"
	Password = "kaiten-test-pw"
)

// Server is a running PostgreSQL.
type Server struct {
	Host string
	Port int
	// PasswordFile holds Password, for configs that read it from a file.
	PasswordFile string

	t    testing.TB
	bin  string
	dir  string
	cred *syscall.Credential
	mu   sync.Mutex
	proc *testutil.Proc // nil once stopped
	dbs  int
}

// Start initialises a cluster and starts PostgreSQL on it; it is stopped
// and removed at test cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: binDir(t)}
	// t.TempDir's parents are private to root; the postgres user needs a
	// directory of its own it can reach.
	dir, err := os.MkdirTemp("", "kaiten-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		s.cred = postgresUser(t)
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "password")
	s.writeOwned(pw, Password+"\n")
	s.PasswordFile = pw
	s.run("initdb", "-D", filepath.Join(dir, "data"), "-U", User, "--pwfile", pw,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--no-locale", "--no-sync")
	host, port, err := net.SplitHostPort(testutil.FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	s.start()
	t.Cleanup(func() {
		log := s.Stop()
		if t.Failed() {
			t.Logf("postgres log:\n%s", log)
		}
	})
	return s
}

// binDir finds the directory of initdb and postgres: on PATH, or in
// Debian's versioned /usr/lib/postgresql/<version>/bin (the newest).
func binDir(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	dirs, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", "initdb"))
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if len(dirs) == 0 {
		t.Fatal("PostgreSQL's server is not installed: run `make test-deps` (make test does it for you)")
	}
	return filepath.Dir(dirs[0])
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func postgresUser(t testing.TB) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("tests run as root and PostgreSQL refuses root: the postgres system user is missing (%v); Debian's postgresql package creates it", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// writeOwned writes a file the server's user owns and only it reads.
func (s *Server) writeOwned(path, body string) {
	s.t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if s.cred != nil {
		if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// If the test binary dies, the postmaster goes with it (and its
	// backends end when they see it gone).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: s.cred}
	return cmd
}

func (s *Server) run(name string, args ...string) {
	s.t.Helper()
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (s *Server) start() {
	s.t.Helper()
	cmd := s.command("postgres", "-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses="+s.Host, "-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=50")
	proc := testutil.StartProc(s.t, "postgres", cmd, 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err != nil {
			return err
		}
		return c.Close(ctx)
	})
	s.mu.Lock()
	s.proc = proc
	s.mu.Unlock()
}

// DSN is a connection string for database on this server.
func (s *Server) DSN(database string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", s.Host, s.Port, User, Password, database)
}

// CreateDatabase creates a fresh database and returns its name.
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("test%d", s.dbs)
	s.mu.Unlock()
	s.Exec(t, "postgres", "CREATE DATABASE "+name)
	return name
}

// Exec runs SQL statements in database, failing the test on an error.
func (s *Server) Exec(t testing.TB, database, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Connect(t, database).Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Strings runs a query in database and returns its rows' first column,
// which must be text.
func (s *Server) Strings(t testing.TB, database, sql string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := s.Connect(t, database).Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// Connect opens a connection to database, closed at test cleanup.
func (s *Server) Connect(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN(database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// Pause freezes the postmaster, then every process it started (backends
// and workers, each in a session of its own, so a process group does not
// reach them): connections hang, as on a dead link. A frozen postmaster
// starts no new ones.
func (s *Server) Pause() { s.signalAll(syscall.SIGSTOP, true) }

// Resume undoes Pause: the children first, then the postmaster.
func (s *Server) Resume() { s.signalAll(syscall.SIGCONT, false) }

// signalAll sends sig to the postmaster and its children, the postmaster
// first or last.
func (s *Server) signalAll(sig syscall.Signal, postmasterFirst bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	pm := s.proc.Cmd.Process
	if postmasterFirst {
		_ = pm.Signal(sig)
	}
	for _, pid := range children(pm.Pid) {
		_ = syscall.Kill(pid, sig)
	}
	if !postmasterFirst {
		_ = pm.Signal(sig)
	}
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// the last ')'.
		i := bytes.LastIndexByte(raw, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(raw[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if child, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			out = append(out, child)
		}
	}
	return out
}

// Stop shuts the server down (fast shutdown; SIGKILL to it and its
// children if it has not ended after 10 s), waits, and returns its log.
func (s *Server) Stop() string {
	s.Resume()
	s.mu.Lock()
	proc := s.proc
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return ""
	}
	_ = proc.Cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-proc.Exited():
	case <-time.After(10 * time.Second):
		for _, pid := range children(proc.Cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = proc.Cmd.Process.Kill()
		<-proc.Exited()
	}
	return proc.Log()
}
