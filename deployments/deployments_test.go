// Package deployments_test keeps the deployment files honest on a machine
// with no Docker engine and no Kubernetes cluster: the files parse, the
// warming plans are valid, every DASHCACHE_* name is a documented setting,
// every container would pass the binary's start-up checks, the Dockerfile's
// build command builds, every metric on the Grafana dashboard is one the
// binary exports, and (with a test Redis) the containers of compose.yaml and
// of the Kubernetes manifests, run here as processes with their settings,
// serve a report together.
package deployments_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dashcache/dashcache/internal/cli"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/scheduler"
)

// isDashcacheImage tells whether an image reference is the dashcache image
// built from deployments/Dockerfile.
func isDashcacheImage(image string) bool {
	name, _, _ := strings.Cut(image, ":")
	return name == "dashcache" || strings.HasSuffix(name, "/dashcache")
}

// readFile returns a file's contents or fails the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file into yaml.Nodes.
func yamlDocs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(string(readFile(t, path))))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if len(n.Content) > 0 && n.Content[0].Kind != yaml.ScalarNode { // skip empty documents
			docs = append(docs, &n)
		}
	}
}

// deploymentFiles lists the files under deployments/ that configure something
// (not this test, not documentation).
func deploymentFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".go" && ext != ".md" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestYAMLParses(t *testing.T) {
	t.Parallel()
	n := 0
	for _, path := range deploymentFiles(t) {
		if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
			if docs := yamlDocs(t, path); len(docs) == 0 {
				t.Errorf("%s holds no YAML document", path)
			}
			n++
		}
	}
	if n < 4 {
		t.Errorf("found %d YAML files under deployments/; want compose, schedule, kubernetes, prometheus and grafana files", n)
	}
	if err := json.Unmarshal(readFile(t, "grafana/dashcache.json"), new(map[string]any)); err != nil {
		t.Errorf("grafana/dashcache.json: %v", err)
	}
}

// TestScheduleExample checks the example warming plan, and the Kubernetes
// ConfigMap that says it holds the same plans, with the scheduler's own parser.
func TestScheduleExample(t *testing.T) {
	t.Parallel()
	example, err := scheduler.LoadFile("schedule.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	k := loadKubernetes(t)
	cm, ok := k.configMaps["dashcache-schedule"]
	if !ok {
		t.Fatal("kubernetes: no ConfigMap dashcache-schedule")
	}
	inCluster, err := scheduler.Parse([]byte(cm["schedule.yaml"]))
	if err != nil {
		t.Fatalf("kubernetes ConfigMap dashcache-schedule, schedule.yaml: %v", err)
	}
	if !reflect.DeepEqual(example, inCluster) {
		t.Errorf("the ConfigMap dashcache-schedule and schedule.example.yaml hold different plans:\n%+v\n%+v", inCluster, example)
	}
}

// TestReportsExample checks the example report catalogue, and the one in
// the README, with the service's own loader: each has a report of every
// back end type.
func TestReportsExample(t *testing.T) {
	t.Parallel()
	_, readme, _ := strings.Cut(string(readFile(t, "../README.md")), "```yaml\nbackends:\n")
	readme, _, _ = strings.Cut(readme, "```")
	for name, data := range map[string][]byte{
		"reports.example.yaml": readFile(t, "reports.example.yaml"),
		"README.md":            []byte("backends:\n" + readme),
	} {
		cat, err := provider.ParseCatalogue(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		types := map[string]bool{}
		for _, b := range cat.Backends {
			types[b.Type] = true
		}
		if len(types) != len(provider.BackendTypes) {
			t.Errorf("%s: back ends of types %v, want one of each of %v", name, types, provider.BackendTypes)
		}
	}
}

// knownSettings reads the settings table of the README at the repository
// root, so that the deployment files and the documentation cannot drift.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	readme := string(readFile(t, "../README.md"))
	_, section, ok := strings.Cut(readme, "\n## Settings\n")
	if !ok {
		t.Fatal("../README.md has no ## Settings section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	known := map[string]bool{}
	name := regexp.MustCompile(`DASHCACHE_[A-Z0-9_]*[A-Z0-9]`)
	for line := range strings.Lines(section) {
		if cells := strings.Split(line, "|"); strings.HasPrefix(line, "|") && len(cells) > 2 {
			for _, n := range name.FindAllString(cells[1], -1) {
				known[n] = true
			}
		}
	}
	if len(known) < 10 {
		t.Fatalf("found only %d settings in the table of ../README.md: %v", len(known), known)
	}
	return known
}

func TestSettingsAreDocumented(t *testing.T) {
	t.Parallel()
	known := knownSettings(t)
	name := regexp.MustCompile(`DASHCACHE_[A-Z0-9_]*[A-Z0-9]`)
	used := 0
	for _, path := range deploymentFiles(t) {
		for i, line := range strings.Split(string(readFile(t, path)), "\n") {
			for _, n := range name.FindAllString(line, -1) {
				used++
				if !known[n] {
					t.Errorf("%s:%d: %s is not a setting in the README's settings table", path, i+1, n)
				}
			}
		}
	}
	if used == 0 {
		t.Error("no DASHCACHE_* setting found in the deployment files")
	}
}

// startupProblems is what would stop the binary at start in a container
// running role with env (the binary's own settings loader says), plus what
// would make the container useless: a role that serves nothing, or a listener
// on loopback, which nothing outside the container reaches.
func startupProblems(role string, env map[string]string) []string {
	if r, ok := cli.RoleNamed(role); !ok || r.Listen == "" {
		var serving []string
		for _, r := range cli.Roles {
			if r.Listen != "" {
				serving = append(serving, r.Name)
			}
		}
		return []string{fmt.Sprintf("role %q is not one of the long-running roles %v", role, serving)}
	}
	var p []string
	if _, err := cli.LoadConfig(role, func(k string) string { return env[k] }); err != nil {
		errs := []error{err}
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			errs = joined.Unwrap()
		}
		for _, e := range errs {
			p = append(p, e.Error())
		}
	}
	listen := env["DASHCACHE_LISTEN"]
	host, _, err := net.SplitHostPort(listen)
	switch {
	case listen == "":
		p = append(p, "no DASHCACHE_LISTEN: the default is on 127.0.0.1, out of reach of probes, Prometheus and other containers")
	case err == nil && (host == "localhost" || net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback()):
		p = append(p, "DASHCACHE_LISTEN="+listen+" is on loopback, out of reach from outside the container")
	}
	return p
}

func TestStartupProblems(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		role string
		env  map[string]string
		want int
	}{
		{"api", map[string]string{"DASHCACHE_REDIS_URL": "redis://r", "DASHCACHE_LISTEN": "0.0.0.0:8080", "DASHCACHE_API_KEYS": "key-0123456789abcdef=*"}, 0},
		{"api", map[string]string{"DASHCACHE_REDIS_URL": "redis://r", "DASHCACHE_LISTEN": "0.0.0.0:8080"}, 1},
		{"worker", map[string]string{"DASHCACHE_LISTEN": "0.0.0.0:9090", "DASHCACHE_ALLOW_UNAUTHENTICATED": "true"}, 1},
		{"scheduler", map[string]string{"DASHCACHE_REDIS_URL": "redis://r", "DASHCACHE_LISTEN": "[::]:9091", "DASHCACHE_ALLOW_UNAUTHENTICATED": "yes"}, 3},
		{"fakebi", map[string]string{"DASHCACHE_LISTEN": "127.0.0.1:8081"}, 1},
		{"warm", nil, 1},
	} {
		if got := startupProblems(c.role, c.env); len(got) != c.want {
			t.Errorf("startupProblems(%s, %v) = %q, want %d problems", c.role, c.env, got, c.want)
		}
	}
}

// listenPort is the port of a DASHCACHE_LISTEN address.
func listenPort(env map[string]string) string {
	_, port, _ := net.SplitHostPort(env["DASHCACHE_LISTEN"])
	return port
}
