package deployments_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dockerfileBuild returns the environment assignments and the arguments of
// the Dockerfile's go build command.
func dockerfileBuild() (env, args []string, err error) {
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		return nil, nil, err
	}
	text := strings.ReplaceAll(string(df), "\\\n", " ")
	for line := range strings.Lines(text) {
		cmd, ok := strings.CutPrefix(strings.TrimSpace(line), "RUN ")
		if !ok || !strings.Contains(cmd, "go build") {
			continue
		}
		words, err := shellWords(cmd)
		if err != nil {
			return nil, nil, fmt.Errorf("Dockerfile: %w", err)
		}
		for len(words) > 0 && strings.Contains(words[0], "=") {
			env, words = append(env, words[0]), words[1:]
		}
		if len(words) < 2 || words[0] != "go" || words[1] != "build" {
			return nil, nil, fmt.Errorf("Dockerfile: want RUN [VAR=value...] go build ..., got %q", cmd)
		}
		return env, words[2:], nil
	}
	return nil, nil, errors.New("Dockerfile: no RUN ... go build")
}

// shellWords splits a simple shell command line: words separated by blanks,
// with single and double quotes but no expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case strings.ContainsRune("$`;&|<>", r):
			return nil, fmt.Errorf("%q: not a simple command", s)
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q: unclosed quote", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// TestDockerfile checks what can be checked without a Docker engine: the
// build stage's Go is go.mod's, and the binary built is the one the final
// stage copies and runs. (The build command itself runs in
// TestDashboardMetricsExist.)
func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := string(readFile(t, "Dockerfile"))
	gomod := string(readFile(t, "../go.mod"))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("../go.mod: no go line")
	}
	if !regexp.MustCompile(`(?m)^FROM golang:` + regexp.QuoteMeta(m[1]) + `[-\s]`).MatchString(df) {
		t.Errorf("Dockerfile: the build stage is not FROM golang:%s (go.mod says go %s)", m[1], m[1])
	}
	_, args, err := dockerfileBuild()
	if err != nil {
		t.Fatal(err)
	}
	out := ""
	if i := slices.Index(args, "-o"); i >= 0 && i+1 < len(args) {
		out = args[i+1]
	}
	for _, want := range []string{"COPY --from=build " + out + " ", `ENTRYPOINT ["` + out + `"]`, "FROM gcr.io/distroless/static", "USER 65532"} {
		if out == "" || !strings.Contains(df, want) {
			t.Errorf("Dockerfile: want %q (the go build output is %q)", want, out)
		}
	}
}

var (
	buildOnce sync.Once
	binDir    string // holds the binary; removed by TestMain
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds dashcache once per test run with the Dockerfile's own go
// build command line, run from the repository root with another -o.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		env, args, err := dockerfileBuild()
		if err != nil {
			buildErr = err
			return
		}
		i := slices.Index(args, "-o")
		if i < 0 || i+1 >= len(args) {
			buildErr = fmt.Errorf("Dockerfile: go build %q has no -o", args)
			return
		}
		if binDir, err = os.MkdirTemp("", "dashcache-deployments-"); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "dashcache")
		args = slices.Clone(args)
		args[i+1] = binPath
		cmd := exec.Command("go", append([]string{"build"}, args...)...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("the Dockerfile's build command, %s go build %s: %v\n%s",
				strings.Join(env, " "), strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// start runs dashcache as role with exactly env (and PATH), waits for its
// "listening" log line and returns the address. When the test ends it is
// stopped with SIGTERM and must exit 0 within 20 s.
func start(t *testing.T, name, role string, env map[string]string) string {
	t.Helper()
	cmd := exec.Command(binary(t), role)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	exited := make(chan error, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			var l struct{ Message, Addr string }
			if json.Unmarshal(lines.Bytes(), &l) == nil && l.Message == "listening" {
				addr <- l.Addr
				break
			}
		}
		io.Copy(io.Discard, stdout) // keep the pipe drained until exit
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s (%s) after SIGTERM: %v\n%s", name, role, err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("%s (%s) did not exit within 20 s of SIGTERM", name, role)
		}
	})
	select {
	case a := <-addr:
		return a
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("%s (%s) exited before it listened: %v\n%s", name, role, err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s (%s) logged no listening line within 30 s", name, role)
	}
	return ""
}
