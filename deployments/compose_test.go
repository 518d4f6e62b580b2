package deployments_test

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dashcache/dashcache/scheduler"
)

// composeService is a service of compose.yaml, as far as these tests read it.
type composeService struct {
	Image           string            `yaml:"image"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
	ReadOnly        bool              `yaml:"read_only"`
	Deploy          struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// loadCompose returns the services of compose.yaml.
func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &f); err != nil {
		t.Fatal(err)
	}
	return f.Services
}

// replicas is how many containers compose starts for a service.
func (s composeService) replicas() int { return max(s.Deploy.Replicas, 1) }

func TestCompose(t *testing.T) {
	t.Parallel()
	services := loadCompose(t)
	byRole := map[string]int{}
	for name, s := range services {
		if !isDashcacheImage(s.Image) {
			continue
		}
		if len(s.Command) != 1 {
			t.Errorf("compose service %s: command %q, want one role", name, s.Command)
			continue
		}
		role := s.Command[0]
		byRole[role] += s.replicas()
		for _, p := range startupProblems(role, s.Environment) {
			t.Errorf("compose service %s (%s): %s", name, role, p)
		}
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d < 30*time.Second {
			t.Errorf("compose service %s: stop_grace_period %q, want at least 30s (the API drains for up to 20 s)", name, s.StopGracePeriod)
		}
		if !s.ReadOnly {
			t.Errorf("compose service %s: want read_only: true", name)
		}
		for _, p := range s.Ports {
			if i := strings.LastIndex(p, ":"); i < 0 || p[i+1:] != listenPort(s.Environment) {
				t.Errorf("compose service %s: published port %q does not lead to DASHCACHE_LISTEN %s", name, p, s.Environment["DASHCACHE_LISTEN"])
			}
		}
		// A URL setting names a service of this file, on the port it serves.
		for _, v := range []string{"DASHCACHE_REDIS_URL", "DASHCACHE_PROVIDER_URL"} {
			if s.Environment[v] == "" {
				continue
			}
			u, err := url.Parse(s.Environment[v])
			if err != nil {
				t.Errorf("compose service %s: %s: %v", name, v, err)
				continue
			}
			target, ok := services[u.Hostname()]
			switch {
			case !ok:
				t.Errorf("compose service %s: %s names host %s, which is no service of compose.yaml", name, v, u.Hostname())
			case isDashcacheImage(target.Image) && listenPort(target.Environment) != u.Port():
				t.Errorf("compose service %s: %s port %s, but %s listens on %s", name, v, u.Port(), u.Hostname(), target.Environment["DASHCACHE_LISTEN"])
			}
		}
		if file := s.Environment["DASHCACHE_SCHEDULE_FILE"]; file != "" {
			src, err := composeMount(file, s.Volumes)
			if err == nil {
				_, err = scheduler.LoadFile(src)
			}
			if err != nil {
				t.Errorf("compose service %s: %v", name, err)
			}
		}
	}
	for role, want := range map[string]int{"api": 2, "worker": 2, "scheduler": 1, "fakebi": 1} {
		if byRole[role] != want {
			t.Errorf("compose.yaml runs %d %s containers, want %d", byRole[role], role, want)
		}
	}
	checkPrometheusTargets(t, services)
}

// composeMount returns the file of this folder that volumes mount at file.
func composeMount(file string, volumes []string) (string, error) {
	for _, v := range volumes {
		if parts := strings.Split(v, ":"); len(parts) >= 2 && parts[1] == file {
			return parts[0], nil
		}
	}
	return "", fmt.Errorf("DASHCACHE_SCHEDULE_FILE %s is not mounted from a file", file)
}

// checkPrometheusTargets checks that the compose Prometheus scrapes services
// that exist, on the port they listen on, with the token their /metrics
// needs.
func checkPrometheusTargets(t *testing.T, services map[string]composeService) {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Authorization struct {
				Credentials string `yaml:"credentials"`
			} `yaml:"authorization"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatal(err)
	}
	token := map[string]string{} // target -> the bearer token its job sends
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			for _, target := range s.Targets {
				token[target] = sc.Authorization.Credentials
			}
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				token[net.JoinHostPort(n, strconv.Itoa(d.Port))] = sc.Authorization.Credentials
			}
		}
	}
	scraped := map[string]bool{}
	for target, sent := range token {
		host, port, _ := net.SplitHostPort(target)
		s, ok := services[host]
		switch {
		case !ok || !isDashcacheImage(s.Image):
			t.Errorf("prometheus.yml scrapes %s, which is no dashcache service of compose.yaml", target)
		case listenPort(s.Environment) != port:
			t.Errorf("prometheus.yml scrapes %s, but %s listens on %s", target, host, s.Environment["DASHCACHE_LISTEN"])
		case s.Environment["DASHCACHE_ADMIN_TOKEN"] != "" && s.Environment["DASHCACHE_METRICS_PUBLIC"] != "true" &&
			sent != s.Environment["DASHCACHE_ADMIN_TOKEN"]:
			t.Errorf("prometheus.yml scrapes %s without its DASHCACHE_ADMIN_TOKEN, which its /metrics needs", target)
		}
		scraped[host] = true
	}
	for name, s := range services {
		if isDashcacheImage(s.Image) && len(s.Command) == 1 && s.Command[0] != "fakebi" && !scraped[name] {
			t.Errorf("prometheus.yml does not scrape compose service %s", name)
		}
	}
}
