package redistest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Process is a private redis-server of a test: killed, and started again on
// the same port, as the test says.
type Process struct {
	// Addr is its host:port on loopback.
	Addr string
	// Password is its requirepass, from the arguments it was started with.
	Password string

	t      testing.TB
	args   []string
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan error
}

// Server starts a private redis-server on a free loopback port with args
// added to its command line (such as "--maxmemory", "8mb"), without
// persistence unless args ask for it, in a directory of its own, and kills
// it when the test ends. Without redis-server on the PATH the test is
// skipped, except under CI=true, where it fails.
func Server(t testing.TB, args ...string) *Process {
	t.Helper()
	bin := lookPath(t, "redis-server")
	dir := t.TempDir()
	p := launch(t, func(port int) []string {
		return append([]string{bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no"}, args...)
	})
	for i, a := range args[:max(len(args)-1, 0)] {
		if a == "--requirepass" {
			p.Password = args[i+1]
		}
	}
	return p
}

// client returns a client of its database 0, which the caller closes.
func (p *Process) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: p.Addr, Password: p.Password})
}

// launch starts the process whose command line command gives for a free
// loopback port, once it answers PING there, and kills it when the test
// ends. A port taken between the check and the bind is retried.
func launch(t testing.TB, command func(port int) []string) *Process {
	t.Helper()
	var lastErr error
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		p := &Process{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, args: command(port)}
		if lastErr = p.start(); lastErr == nil { // else the port was taken in between
			t.Cleanup(p.Kill)
			return p
		}
	}
	t.Fatalf("could not start %s: %v", filepath.Base(command(0)[0]), lastErr)
	return nil
}

// Port returns its port.
func (p *Process) Port() string {
	_, port, _ := net.SplitHostPort(p.Addr)
	return port
}

// URL returns the redis:// URL of its database db.
func (p *Process) URL(db int) string {
	return fmt.Sprintf("redis://%s/%d", p.Addr, db)
}

// Kill kills it (SIGKILL) and waits for it to exit; killing it twice is
// safe.
func (p *Process) Kill() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}

// Start starts it again, killed before, on the same port.
func (p *Process) Start() {
	p.t.Helper()
	if err := p.start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Process) start() error {
	p.out = new(bytes.Buffer)
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return fmt.Errorf("starting redis-server: %w", err)
	}
	p.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, exited chan error) { exited <- cmd.Wait() }(p.cmd, p.exited)
	if err := waitPing(p.Addr, p.exited); err != nil {
		p.cmd.Process.Kill()
		<-p.exited
		p.cmd = nil
		return fmt.Errorf("redis-server on %s: %v\n%s", p.Addr, err, p.out.String())
	}
	return nil
}

// lookPath finds a program the test needs, or skips the test (fails it
// under CI=true).
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: the tests need redis-server and redis-cli under CI (.ci/run installs them)", name)
		}
		t.Skipf("%s not found; install redis-server and redis-cli (Debian: redis-server, redis-tools) to run this test", name)
	}
	return p
}
