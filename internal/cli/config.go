package cli

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/dashcache/dashcache/provider"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Config is every setting of one run, read from the environment by
// LoadConfig (README.md, "Settings"). A setting left unset stays zero, and the
// package that uses it applies its own default, unless its comment names
// the default set here.
type Config struct {
	Role                 Role
	RedisURL             string              // DASHCACHE_REDIS_URL; "" and no cluster: embedded (Role.Embedded only)
	RedisClusterAddrs    []string            // DASHCACHE_REDIS_CLUSTER_ADDRS: use Redis Cluster instead
	RedisSentinel        Sentinel            // DASHCACHE_REDIS_SENTINEL_* ...: use Redis Sentinel instead
	CacheRedisURL        string              // DASHCACHE_CACHE_REDIS_URL; "" = the reports live with the queue
	CacheRedisSentinel   Sentinel            // DASHCACHE_CACHE_REDIS_SENTINEL_* ...: the reports' Redis, through Sentinel
	Listen               string              // DASHCACHE_LISTEN; default Role.Listen
	ProviderURL          string              // DASHCACHE_PROVIDER_URL; "" = built-in simulator
	ProviderToken        string              // DASHCACHE_PROVIDER_TOKEN
	ProviderTimeout      time.Duration       // DASHCACHE_PROVIDER_TIMEOUT; 0 = provider's and guard's default
	ProviderRate         int                 // DASHCACHE_PROVIDER_RATE; 0 = guard's default
	ProviderBurst        int                 // DASHCACHE_PROVIDER_BURST; 0 = guard's default
	ProviderMaxBytes     int64               // DASHCACHE_PROVIDER_MAX_BYTES; 0 = provider's default
	CustomerConcurrency  int                 // DASHCACHE_CUSTOMER_CONCURRENCY; 0 = guard's default
	CustomerPending      int                 // DASHCACHE_CUSTOMER_PENDING; 0 = guard's default
	CustomerDailyCalls   int                 // DASHCACHE_CUSTOMER_DAILY_CALLS; 0 = no budget
	EarliestDate         time.Time           // DASHCACHE_EARLIEST_DATE; zero = dashcache.HorizonYears before today
	BreakerCooldown      time.Duration       // DASHCACHE_BREAKER_COOLDOWN; 0 = guard's default
	WorkerConcurrency    int                 // DASHCACHE_WORKER_CONCURRENCY; 0 = jobs' default
	AllowUnauthenticated bool                // DASHCACHE_ALLOW_UNAUTHENTICATED
	APIKeys              api.APIKeys         // DASHCACHE_API_KEYS; nil = no authentication
	AdminToken           string              // DASHCACHE_ADMIN_TOKEN; "" = admin paths on loopback only
	AllowedHosts         []string            // DASHCACHE_ALLOWED_HOSTS; nil = loopback names only
	MetricsPublic        bool                // DASHCACHE_METRICS_PUBLIC
	L1Bytes              int64               // DASHCACHE_L1_BYTES; default api.DefaultL1Bytes, 0 = none
	ReadWithin           time.Duration       // DASHCACHE_REFRESH_READ_WITHIN; default dashcache.DefaultReadWithin, 0 = reads not tracked
	MonitoringReadOnly   bool                // DASHCACHE_MONITORING_READONLY
	ScheduleFile         string              // DASHCACHE_SCHEDULE_FILE; "" = no scheduled warming
	Drain                time.Duration       // DASHCACHE_DRAIN; default defaultDrain, 0 = none
	MaxConns             int                 // DASHCACHE_MAX_CONNS; default defaultMaxConns, 0 = no cap
	MaxConnsPerIP        int                 // DASHCACHE_MAX_CONNS_PER_IP; default defaultMaxConnsPerIP, 0 = no cap
	Reports              *provider.Catalogue // DASHCACHE_REPORTS_FILE, loaded and checked; nil = the default report alone
	PartitionDefault     bool                // DASHCACHE_PARTITION=month: the default report is cached by month
	getenv               func(string) string // reads the back ends' secrets, which the catalogue names, and OTEL_*
	Zone                 *time.Location      // DASHCACHE_TIMEZONE; nil = each package's default, UTC
	LogLevel             zerolog.Level       // DASHCACHE_LOG_LEVEL; default info
	LogConsole           bool                // DASHCACHE_LOG_FORMAT=console; default json
	// DASHCACHE_SIM_LATENCY, as provider.SimConfig takes it; zero = the
	// simulator's default.
	SimMinLatency, SimMaxLatency time.Duration
}

// Sentinel names a Redis that Redis Sentinel watches: go-redis asks the
// sentinels for its primary and follows a failover. Unset while Addrs is
// empty. The settings are those of the queue's Redis (DASHCACHE_REDIS_...)
// or the reports' own (DASHCACHE_CACHE_REDIS_...).
type Sentinel struct {
	Addrs            []string // ..._SENTINEL_ADDRS: host:port of sentinels (any of them; the others are discovered)
	Master           string   // ..._SENTINEL_MASTER: the name the sentinels know the primary by
	SentinelPassword string   // ..._SENTINEL_PASSWORD: the sentinels' own; "" = none
	Password         string   // ..._PASSWORD: the data's, on the primary; "" = none
	DB               int      // ..._DB: the database; default 0
}

func (s Sentinel) set() bool { return len(s.Addrs) > 0 }

// defaultDrain is how long a process goes on serving after SIGTERM, with
// /readyz 503, by default: a load balancer probing every few seconds has
// stopped sending requests by then. maxDrain bounds the setting.
const (
	defaultDrain = 5 * time.Second
	maxDrain     = 5 * time.Minute
)

// defaultMaxConns caps the connections a process holds open by default:
// an idle keep-alive connection to the API costs about 9 KB, mostly its
// goroutine's stack (README, "Security"), so 10,000 cost about 90 MB.
// defaultMaxConnsPerIP leaves a tenth of them to one client address.
const (
	defaultMaxConns      = 10_000
	defaultMaxConnsPerIP = 1_000
)

// maxProviderTimeout keeps one BI call well inside a fill task's own timeout
// (jobs.TaskTimeout).
const maxProviderTimeout = 5 * time.Minute

// LoadConfig reads the settings of the named role from getenv and checks
// them, as the binary does before it starts anything. Every problem is
// reported, each naming its variable and what it accepts.
func LoadConfig(role string, getenv func(string) string) (Config, error) {
	r, ok := RoleNamed(role)
	if !ok {
		return Config{}, fmt.Errorf("unknown role %q", role)
	}
	env := func(name string) string { return strings.TrimSpace(getenv("DASHCACHE_" + name)) }
	c := Config{
		Role:          r,
		RedisURL:      env("REDIS_URL"),
		CacheRedisURL: env("CACHE_REDIS_URL"),
		Listen:        cmp.Or(env("LISTEN"), r.Listen),
		ProviderURL:   env("PROVIDER_URL"),
		ProviderToken: env("PROVIDER_TOKEN"),
		ScheduleFile:  env("SCHEDULE_FILE"),
		AdminToken:    env("ADMIN_TOKEN"),
		getenv:        getenv,
		LogLevel:      zerolog.InfoLevel,
		L1Bytes:       api.DefaultL1Bytes,
		Drain:         defaultDrain,
		MaxConns:      defaultMaxConns,
		MaxConnsPerIP: defaultMaxConnsPerIP,
		ReadWithin:    dashcache.DefaultReadWithin,
	}
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("DASHCACHE_%s: %s", name, fmt.Sprintf(format, args...)))
	}
	// Each parser runs only when its variable is set, and stores the value.
	set := func(name string, parse func(v string) error) {
		if v := env(name); v != "" {
			if err := parse(v); err != nil {
				bad(name, "%v", err)
			}
		}
	}
	duration := func(d *time.Duration) func(string) error {
		return func(v string) (err error) {
			if *d, err = time.ParseDuration(v); err != nil || *d <= 0 {
				return fmt.Errorf("want a positive Go duration such as 30s, got %q", v)
			}
			return nil
		}
	}
	whole := func(n *int, least int) func(string) error {
		return func(v string) (err error) {
			if *n, err = strconv.Atoi(v); err != nil || *n < least {
				return fmt.Errorf("want a whole number of at least %d, got %q", least, v)
			}
			return nil
		}
	}
	boolean := func(b *bool) func(string) error {
		return func(v string) (err error) {
			if *b, err = strconv.ParseBool(v); err != nil {
				return fmt.Errorf("want true or false, got %q", v)
			}
			return nil
		}
	}

	set("PROVIDER_TIMEOUT", duration(&c.ProviderTimeout))
	if c.ProviderTimeout > maxProviderTimeout {
		bad("PROVIDER_TIMEOUT", "at most %s", maxProviderTimeout)
	}
	set("PROVIDER_RATE", whole(&c.ProviderRate, 1))
	set("PROVIDER_BURST", whole(&c.ProviderBurst, 1))
	set("WORKER_CONCURRENCY", whole(&c.WorkerConcurrency, 1))
	set("CUSTOMER_CONCURRENCY", whole(&c.CustomerConcurrency, 1))
	set("CUSTOMER_PENDING", whole(&c.CustomerPending, 1))
	set("CUSTOMER_DAILY_CALLS", whole(&c.CustomerDailyCalls, 0))
	set("PROVIDER_MAX_BYTES", func(v string) (err error) {
		if c.ProviderMaxBytes, err = strconv.ParseInt(v, 10, 64); err != nil || c.ProviderMaxBytes < 1 {
			return fmt.Errorf("want a number of bytes of at least 1, such as 16777216, got %q", v)
		}
		return nil
	})
	set("BREAKER_COOLDOWN", duration(&c.BreakerCooldown))
	set("DRAIN", func(v string) (err error) {
		if c.Drain, err = time.ParseDuration(v); err != nil || c.Drain < 0 || c.Drain > maxDrain {
			return fmt.Errorf("want a Go duration from 0s to %s, such as 10s (0s: stop at once), got %q", maxDrain, v)
		}
		return nil
	})
	conns := func(n *int) func(string) error {
		return func(v string) (err error) {
			if *n, err = strconv.Atoi(v); err != nil || *n < 0 {
				return fmt.Errorf("want a whole number of connections, such as 10000 (0: no cap), got %q", v)
			}
			return nil
		}
	}
	set("MAX_CONNS", conns(&c.MaxConns))
	set("MAX_CONNS_PER_IP", conns(&c.MaxConnsPerIP))
	set("REPORTS_FILE", func(v string) (err error) {
		c.Reports, err = provider.LoadCatalogue(v)
		return err
	})
	if err := tracing.Check(getenv); err != nil {
		errs = append(errs, err)
	}
	set("PARTITION", func(v string) error {
		if v != provider.PartitionByMonth && v != "off" {
			return fmt.Errorf("want month (the default report cached by calendar month, assembled for every range) or off, got %q", v)
		}
		c.PartitionDefault = v == provider.PartitionByMonth
		return nil
	})
	set("L1_BYTES", func(v string) (err error) {
		if c.L1Bytes, err = strconv.ParseInt(v, 10, 64); err != nil || c.L1Bytes < 0 {
			return fmt.Errorf("want a number of bytes, such as 67108864 (0: no in-process cache), got %q", v)
		}
		return nil
	})
	set("REFRESH_READ_WITHIN", func(v string) (err error) {
		if c.ReadWithin, err = dashcache.ParseReadWithin(v); err != nil {
			return fmt.Errorf("%w (0: reads are not tracked)", err)
		}
		return nil
	})
	set("EARLIEST_DATE", func(v string) (err error) {
		if c.EarliestDate, err = time.Parse(dashcache.DateLayout, v); err != nil {
			return fmt.Errorf("want a date YYYY-MM-DD, got %q", v)
		}
		return nil
	})
	set("ALLOW_UNAUTHENTICATED", boolean(&c.AllowUnauthenticated))
	set("MONITORING_READONLY", boolean(&c.MonitoringReadOnly))
	set("METRICS_PUBLIC", boolean(&c.MetricsPublic))
	set("ADMIN_TOKEN", api.CheckSecret)
	set("ALLOWED_HOSTS", func(v string) error {
		for _, h := range strings.Split(v, ",") {
			h = strings.TrimSpace(h)
			if h == "" || strings.ContainsAny(h, ":/@ ") {
				return fmt.Errorf("want host names or addresses without port, such as dash.example.com,10.0.0.5, got %q", h)
			}
			c.AllowedHosts = append(c.AllowedHosts, h)
		}
		return nil
	})
	set("API_KEYS", func(v string) (err error) {
		if c.APIKeys, err = api.ParseAPIKeys(v); err != nil {
			return fmt.Errorf("want key=customer|customer,key2=*: %w", err)
		}
		return nil
	})
	set("TIMEZONE", func(v string) (err error) {
		if c.Zone, err = time.LoadLocation(v); err != nil {
			return fmt.Errorf("want an IANA zone such as Europe/Berlin, got %q", v)
		}
		return nil
	})
	set("SIM_LATENCY", func(v string) (err error) {
		c.SimMinLatency, c.SimMaxLatency, err = provider.ParseLatency(v)
		return err
	})
	set("LOG_LEVEL", func(v string) (err error) {
		if c.LogLevel, err = zerolog.ParseLevel(v); err != nil || c.LogLevel == zerolog.NoLevel {
			return fmt.Errorf("want debug, info, warn or error, got %q", v)
		}
		return nil
	})
	set("LOG_FORMAT", func(v string) error {
		if v != "json" && v != "console" {
			return fmt.Errorf("want json or console, got %q", v)
		}
		c.LogConsole = v == "console"
		return nil
	})
	redisURL := func(v string) error {
		// (redis.ParseURL's errors may show the URL: not printed.)
		if _, err := redis.ParseURL(v); err != nil {
			return fmt.Errorf("want redis://[user:pass@]host:port/db or rediss://..., got %q", redact(v))
		}
		return nil
	}
	set("REDIS_URL", redisURL)
	set("CACHE_REDIS_URL", redisURL)
	set("PROVIDER_URL", func(v string) error {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("want an http:// or https:// base URL, got %q", redact(v))
		}
		return nil
	})
	addrs := func(list *[]string) func(string) error {
		return func(v string) error {
			for _, a := range strings.Split(v, ",") {
				a = strings.TrimSpace(a)
				if _, _, err := net.SplitHostPort(a); err != nil {
					return fmt.Errorf("want host:port,host:port,..., got %q", redact(a))
				}
				*list = append(*list, a)
			}
			return nil
		}
	}
	set("REDIS_CLUSTER_ADDRS", addrs(&c.RedisClusterAddrs))
	// A Redis through Sentinel: the queue's (REDIS_...) or the reports' own
	// (CACHE_REDIS_...), in place of url (the name of its URL setting).
	sentinel := func(s *Sentinel, redisPrefix, url string) {
		set(redisPrefix+"SENTINEL_ADDRS", addrs(&s.Addrs))
		s.Master = env(redisPrefix + "SENTINEL_MASTER")
		s.SentinelPassword = env(redisPrefix + "SENTINEL_PASSWORD")
		s.Password = env(redisPrefix + "PASSWORD")
		set(redisPrefix+"DB", whole(&s.DB, 0))
		if env(redisPrefix+"SENTINEL_ADDRS") == "" {
			for _, name := range []string{"SENTINEL_MASTER", "SENTINEL_PASSWORD", "PASSWORD", "DB"} {
				if env(redisPrefix+name) != "" {
					bad(redisPrefix+name, "only with Redis Sentinel (DASHCACHE_%sSENTINEL_ADDRS); "+
						"a URL gives its own password and database (DASHCACHE_%s: redis://:password@host:port/db)", redisPrefix, url)
				}
			}
			return
		}
		if s.Master == "" {
			bad(redisPrefix+"SENTINEL_MASTER", "DASHCACHE_%sSENTINEL_ADDRS needs the name the sentinels know the primary by (sentinel monitor NAME ...)", redisPrefix)
		}
		if env(url) != "" {
			bad(url, "give either DASHCACHE_%s or DASHCACHE_%sSENTINEL_ADDRS, not both: with Sentinel the sentinels say where the primary is", url, redisPrefix)
		}
	}
	sentinel(&c.RedisSentinel, "REDIS_", "REDIS_URL")
	sentinel(&c.CacheRedisSentinel, "CACHE_REDIS_", "CACHE_REDIS_URL")
	if c.RedisSentinel.set() && len(c.RedisClusterAddrs) > 0 {
		bad("REDIS_SENTINEL_ADDRS", "give either DASHCACHE_REDIS_SENTINEL_ADDRS or DASHCACHE_REDIS_CLUSTER_ADDRS, not both: a Redis Cluster fails over by itself")
	}

	queueRedis := c.RedisURL != "" || len(c.RedisClusterAddrs) > 0 || c.RedisSentinel.set()
	if r.Redis && !r.Embedded && !queueRedis {
		bad("REDIS_URL", "role %s needs a Redis: DASHCACHE_REDIS_URL, DASHCACHE_REDIS_CLUSTER_ADDRS or DASHCACHE_REDIS_SENTINEL_ADDRS is required "+
			"(only role all may run on the embedded Redis)", r.Name)
	}
	if u, err := redis.ParseURL(c.RedisURL); err == nil && len(c.RedisClusterAddrs) > 0 {
		if err := clusterDB(u); err != nil {
			bad("REDIS_URL", "%v", err)
		}
	}
	if (c.CacheRedisURL != "" || c.CacheRedisSentinel.set()) && !queueRedis {
		name := map[bool]string{true: "CACHE_REDIS_SENTINEL_ADDRS", false: "CACHE_REDIS_URL"}[c.CacheRedisSentinel.set()]
		bad(name, "a Redis of the reports' own needs DASHCACHE_REDIS_URL, DASHCACHE_REDIS_CLUSTER_ADDRS or DASHCACHE_REDIS_SENTINEL_ADDRS for the queue")
	}
	if c.PartitionDefault && c.Reports != nil && c.ProviderURL == "" {
		bad("PARTITION", "partitions the default report, and there is none: the report catalogue names the reports and DASHCACHE_PROVIDER_URL is not set; "+
			"partition a report of the catalogue with its partition: block instead")
	}
	if r.ScheduleRequired && c.ScheduleFile == "" {
		bad("SCHEDULE_FILE", "role %s needs a warming plan file (see README.md)", r.Name)
	}
	if r.Listen != "" { // one-shot roles serve nothing
		// Keys that were given but are bad are reported above, not as unset.
		if err := checkListen(c.Listen, c.AllowUnauthenticated || env("API_KEYS") != ""); err != nil {
			bad("LISTEN", "%v", err)
		}
	}
	return c, errors.Join(errs...)
}

// redact returns a URL as given in a setting with any user and password
// replaced, even when the URL does not parse: errors are printed and logged.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	}
	authority, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = "xxxxx" + authority[at:]
	}
	out := authority
	if strings.Contains(rest, "/") {
		out += "/" + path
	}
	if ok {
		out = scheme + "://" + out
	}
	return out
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
