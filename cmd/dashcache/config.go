package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/rs/zerolog"
)

// Config is every setting, read from the environment (see CONTRACT.md).
type Config struct {
	RedisURL             string        // DASHCACHE_REDIS_URL; "" = embedded (role all only)
	RedisClusterAddrs    []string      // DASHCACHE_REDIS_CLUSTER_ADDRS: use Redis Cluster instead
	Listen               string        // DASHCACHE_LISTEN; default per role
	ProviderURL          string        // DASHCACHE_PROVIDER_URL; "" = built-in simulator
	ProviderToken        string        // DASHCACHE_PROVIDER_TOKEN
	ProviderTimeout      time.Duration // DASHCACHE_PROVIDER_TIMEOUT; default 60s
	ProviderRate         int           // DASHCACHE_PROVIDER_RATE; default 10
	AllowUnauthenticated bool          // DASHCACHE_ALLOW_UNAUTHENTICATED; default false
	APIKeys              api.APIKeys   // DASHCACHE_API_KEYS; nil = no authentication
	AdminToken           string        // DASHCACHE_ADMIN_TOKEN; "" = admin paths on loopback only
	MonitoringReadOnly   bool          // DASHCACHE_MONITORING_READONLY; default false
	WorkerConcurrency    int           // DASHCACHE_WORKER_CONCURRENCY; default 10
	ScheduleFile         string        // DASHCACHE_SCHEDULE_FILE; "" = no scheduled warming
	Zone                 *time.Location
	LogLevel             string // DASHCACHE_LOG_LEVEL; default info
	LogFormat            string // DASHCACHE_LOG_FORMAT; json (default) or console
	SimLatencyMin        time.Duration
	SimLatencyMax        time.Duration // DASHCACHE_SIM_LATENCY: "3s" or "2s-5s"; default 2s-5s
}

// defaultListen is each role's listen address.
var defaultListen = map[string]string{
	"all":       "127.0.0.1:8080",
	"api":       "127.0.0.1:8080",
	"worker":    "127.0.0.1:9090",
	"scheduler": "127.0.0.1:9091",
	"fakebi":    "127.0.0.1:8081",
}

// maxProviderTimeout keeps one BI call well inside a warm task's own timeout.
const maxProviderTimeout = 5 * time.Minute

// loadConfig reads the settings of role from getenv and checks them; every
// error names the variable and what it accepts.
func loadConfig(role string, getenv func(string) string) (Config, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv("DASHCACHE_" + name)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		RedisURL:      env("REDIS_URL", ""),
		Listen:        env("LISTEN", defaultListen[role]),
		ProviderURL:   env("PROVIDER_URL", ""),
		ProviderToken: env("PROVIDER_TOKEN", ""),
		ScheduleFile:  env("SCHEDULE_FILE", ""),
		AdminToken:    env("ADMIN_TOKEN", ""),
		LogLevel:      env("LOG_LEVEL", "info"),
		LogFormat:     env("LOG_FORMAT", "json"),
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("DASHCACHE_%s: %s", name, fmt.Sprintf(format, args...)))
	}
	duration := func(name, def string) time.Duration {
		d, err := time.ParseDuration(env(name, def))
		if err != nil || d <= 0 {
			bad(name, "want a positive Go duration such as 30s, got %q", env(name, def))
		}
		return d
	}
	positive := func(name, def string) int {
		n, err := strconv.Atoi(env(name, def))
		if err != nil || n <= 0 {
			bad(name, "want a positive whole number, got %q", env(name, def))
		}
		return n
	}
	boolean := func(name string) bool {
		b, err := strconv.ParseBool(env(name, "false"))
		if err != nil {
			bad(name, "want true or false, got %q", env(name, ""))
		}
		return b
	}

	c.ProviderTimeout = duration("PROVIDER_TIMEOUT", "60s")
	if c.ProviderTimeout > maxProviderTimeout {
		bad("PROVIDER_TIMEOUT", "at most %s", maxProviderTimeout)
	}
	c.ProviderRate = positive("PROVIDER_RATE", "10")
	c.WorkerConcurrency = positive("WORKER_CONCURRENCY", "10")
	c.AllowUnauthenticated = boolean("ALLOW_UNAUTHENTICATED")
	c.MonitoringReadOnly = boolean("MONITORING_READONLY")
	if v := env("API_KEYS", ""); v != "" {
		keys, err := api.ParseAPIKeys(v)
		if err != nil {
			bad("API_KEYS", "want key=customer|customer,key2=*: %v", err)
		}
		c.APIKeys = keys
	}
	zone, err := time.LoadLocation(env("TIMEZONE", "UTC"))
	if err != nil {
		bad("TIMEZONE", "want an IANA zone such as Europe/Berlin, got %q", env("TIMEZONE", ""))
	}
	c.Zone = zone

	lat := env("SIM_LATENCY", "2s-5s")
	lo, hi, found := strings.Cut(lat, "-")
	if !found {
		hi = lo
	}
	c.SimLatencyMin, err = time.ParseDuration(lo)
	if err == nil {
		c.SimLatencyMax, err = time.ParseDuration(hi)
	}
	if err != nil || c.SimLatencyMin < 0 || c.SimLatencyMax < c.SimLatencyMin {
		bad("SIM_LATENCY", "want a duration (3s) or a range (2s-5s), got %q", lat)
	}

	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("REDIS_URL", "want redis://[user:pass@]host:port/db or rediss://...")
		}
	}
	if c.ProviderURL != "" {
		if u, err := url.Parse(c.ProviderURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("PROVIDER_URL", "want an http:// or https:// base URL, got %q", c.ProviderURL)
		}
	}
	if l, err := zerolog.ParseLevel(c.LogLevel); err != nil || l == zerolog.NoLevel {
		bad("LOG_LEVEL", "want debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("LOG_FORMAT", "want json or console, got %q", c.LogFormat)
	}
	if v := env("REDIS_CLUSTER_ADDRS", ""); v != "" {
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad("REDIS_CLUSTER_ADDRS", "want host:port,host:port,..., got %q", a)
			}
			c.RedisClusterAddrs = append(c.RedisClusterAddrs, a)
		}
	}
	if role == "scheduler" && c.ScheduleFile == "" {
		bad("SCHEDULE_FILE", "role scheduler needs a warming plan file (see README.md)")
	}
	if c.Listen != "" { // role warm serves nothing
		if err := checkListen(c.Listen, c.AllowUnauthenticated || c.APIKeys != nil); err != nil {
			bad("LISTEN", "%v", err)
		}
	}
	return c, errors.Join(errs...)
}

// checkListen refuses a listener reachable from other hosts unless it is
// authenticated or running without authentication was asked for explicitly.
func checkListen(addr string, authenticatedOrAllowed bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if authenticatedOrAllowed {
		return nil
	}
	return fmt.Errorf("%q is reachable from other hosts but DASHCACHE_API_KEYS is unset; "+
		"set API keys, listen on 127.0.0.1, or set DASHCACHE_ALLOW_UNAUTHENTICATED=true to serve without authentication", addr)
}
