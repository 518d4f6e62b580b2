package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/prometheus/client_golang/prometheus"
)

// APIKeys maps API keys (by their SHA-256, so a lookup takes the same time
// whatever the key) to the customers each may read.
type APIKeys map[[32]byte]access

type access struct {
	all       bool
	customers map[string]bool
}

// ParseAPIKeys parses DASHCACHE_API_KEYS: "key=customer|customer,key2=*",
// where * grants every customer. Errors never repeat a key.
func ParseAPIKeys(s string) (APIKeys, error) {
	keys := APIKeys{}
	for i, entry := range strings.Split(s, ",") {
		key, grants, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok || key == "" || grants == "" {
			return nil, fmt.Errorf("entry %d is not key=customer|customer or key=*", i+1)
		}
		if err := CheckSecret(key); err != nil {
			return nil, fmt.Errorf("entry %d: the key is too short: %w", i+1, err)
		}
		sum := sha256.Sum256([]byte(key))
		if _, dup := keys[sum]; dup {
			return nil, fmt.Errorf("entry %d repeats an earlier key", i+1)
		}
		a := access{all: grants == "*", customers: map[string]bool{}}
		if !a.all {
			for _, c := range strings.Split(grants, "|") {
				if err := dashcache.CheckCustomer(c); err != nil {
					return nil, fmt.Errorf("entry %d: %w", i+1, err)
				}
				a.customers[c] = true
			}
		}
		keys[sum] = a
	}
	return keys, nil
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header's
// value, or "".
func bearer(authorization string) string {
	scheme, token, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticate returns the access of the request's API key. ok is false, and
// the refusal has been written, when keys are configured and the request has
// none that is valid (401; 429 for an address that failed too often), or when
// no keys are configured and the request names a Host that is neither
// loopback nor allowed (403: DNS rebinding). Without keys every request from
// an allowed Host may read everything.
func (g *Auth) authenticate(w http.ResponseWriter, r *http.Request) (a access, ok bool) {
	if g.cfg.APIKeys == nil {
		if !g.hostAllowed(r.Host) {
			g.refuseHost(w, r, "DASHCACHE_API_KEYS")
			return access{}, false
		}
		return access{all: true}, true
	}
	if g.throttled(w, r) {
		return access{}, false
	}
	token := bearer(r.Header.Get("Authorization"))
	if a, ok = g.key(token); !ok {
		g.failed(r)
		w.Header().Set("WWW-Authenticate", `Bearer realm="dashcache"`)
		detail := "send your API key as Authorization: Bearer KEY"
		if token != "" {
			detail = "the API key is not valid; check it, or ask for one"
		}
		problem(w, http.StatusUnauthorized, detail)
		return access{}, false
	}
	return a, true
}

// admitsRead is authenticate for a read that the fast path may serve: it
// admits exactly the reads authenticate admits, and refuses (false) the
// others without a word, for the net/http path to refuse them. addr gives
// the client's address without its port, asked only when API keys are set.
func (g *Auth) admitsRead(host, authorization string, addr func() string) (access, bool) {
	if g.cfg.APIKeys == nil {
		return access{all: true}, g.hostAllowed(host)
	}
	if g.throttle.wait(addr()) > 0 {
		return access{}, false
	}
	return g.key(bearer(authorization))
}

// key returns the access of an API key; ok is false for none ("") and for
// an unknown one.
func (g *Auth) key(token string) (a access, ok bool) {
	a, ok = g.cfg.APIKeys[sha256.Sum256([]byte(token))]
	return a, ok && token != ""
}

func (a access) allows(customer string) bool {
	return a.all || a.customers[customer]
}

// MinSecretLen is the shortest API key or admin token accepted.
const MinSecretLen = 16

// CheckSecret returns an error if secret is too short to resist guessing.
// It never repeats the secret.
func CheckSecret(secret string) error {
	if len(secret) < MinSecretLen {
		return fmt.Errorf("it has %d characters; use at least %d random ones", len(secret), MinSecretLen)
	}
	return nil
}

// AuthConfig says who may call the API.
type AuthConfig struct {
	// APIKeys, when not nil, are required to read reports; default: no
	// authentication, for requests whose Host is allowed.
	APIKeys APIKeys
	// AdminToken guards the admin endpoints; default "": loopback only, for
	// requests whose Host is allowed.
	AdminToken string
	// AllowedHosts are the host names (or addresses) a request may name,
	// besides loopback ones, while API keys or the admin token are unset,
	// and the origins admin changes may come from. Default: none.
	AllowedHosts []string
	// MetricsPublic serves /metrics without the admin token. Default false:
	// with an admin token set, /metrics needs it too.
	MetricsPublic bool
	// Registerer receives dashcache_auth_failures_total. Default: not
	// exported.
	Registerer prometheus.Registerer
}

// Auth decides who may call: API keys for reads, the admin token for the
// admin endpoints and /metrics, the Hosts and Origins a browser may name,
// and a throttle on addresses that keep failing to authenticate. It is safe
// for concurrent use.
type Auth struct {
	cfg      AuthConfig
	hosts    map[string]bool
	adminSum [32]byte
	throttle *throttle
	failures *prometheus.CounterVec
}

// NewAuth returns an Auth for cfg.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	g := &Auth{
		cfg:      cfg,
		hosts:    map[string]bool{},
		adminSum: sha256.Sum256([]byte(cfg.AdminToken)),
		throttle: newThrottle(failuresPerMinute, time.Minute),
		failures: prom.CounterVec("dashcache_auth_failures_total",
			"Requests refused for their credentials: failed (a wrong or missing key or token), throttled (an address past 10 failures a minute).",
			"result", "failed", "throttled"),
	}
	for _, h := range cfg.AllowedHosts {
		g.hosts[strings.ToLower(h)] = true
	}
	if err := prom.Register(cfg.Registerer, g.failures); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return g, nil
}

// Admin guards an admin endpoint. With an admin token, a request needs HTTP
// Basic admin:TOKEN or Bearer TOKEN; without one, it must come from loopback
// and name an allowed Host. A change (not GET, HEAD or OPTIONS) from a page
// whose Origin is not an allowed host is refused either way. Answers cannot
// be framed by other sites.
func (g *Auth) Admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "frame-ancestors 'none'")
		if g.crossSite(r) {
			problem(w, http.StatusForbidden, "admin changes must come from this server's own pages: the Origin header names a host that is neither loopback nor in DASHCACHE_ALLOWED_HOSTS")
			return
		}
		if g.cfg.AdminToken == "" {
			if !isLoopback(clientAddr(r.RemoteAddr)) {
				problem(w, http.StatusForbidden, "admin endpoints answer only on loopback while DASHCACHE_ADMIN_TOKEN is unset")
				return
			}
			if !g.hostAllowed(r.Host) {
				g.refuseHost(w, r, "DASHCACHE_ADMIN_TOKEN")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if g.throttled(w, r) {
			return
		}
		token := bearer(r.Header.Get("Authorization"))
		if user, pass, ok := r.BasicAuth(); ok && user == "admin" {
			token = pass
		}
		// Digests of equal length: the comparison takes as long whatever
		// the token's length.
		sum := sha256.Sum256([]byte(token))
		if token == "" || subtle.ConstantTimeCompare(sum[:], g.adminSum[:]) != 1 {
			g.failed(r)
			w.Header().Set("WWW-Authenticate", `Basic realm="dashcache admin", charset="UTF-8"`)
			problem(w, http.StatusUnauthorized, "admin endpoints need HTTP Basic admin:<DASHCACHE_ADMIN_TOKEN> or Authorization: Bearer <DASHCACHE_ADMIN_TOKEN>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Metrics guards /metrics: like an admin endpoint while an admin token is
// set, unless MetricsPublic; open otherwise.
func (g *Auth) Metrics(next http.Handler) http.Handler {
	if g.cfg.AdminToken == "" || g.cfg.MetricsPublic {
		return next
	}
	return g.Admin(next)
}

// hostAllowed reports whether a request's Host (or an Origin's host) names
// this server as a browser on this host would: a loopback name or address,
// or one of AllowedHosts. A page of another site whose name resolves to
// 127.0.0.1 (DNS rebinding) names its own host, and is refused.
func (g *Auth) hostAllowed(hostport string) bool {
	host := hostport
	if strings.Contains(hostport, ":") { // else SplitHostPort's error costs an allocation per read
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || g.hosts[host] {
		return true
	}
	return isLoopback(host)
}

// isLoopback reports whether host is a loopback address.
func isLoopback(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func (g *Auth) refuseHost(w http.ResponseWriter, r *http.Request, setting string) {
	problem(w, http.StatusForbidden, fmt.Sprintf("this server does not answer for the host %q: without %s it answers only for loopback names "+
		"(localhost, 127.0.0.1) and those in DASHCACHE_ALLOWED_HOSTS", truncate(r.Host, 100), setting))
}

// crossSite reports whether a state-changing request comes from another
// site's page: a browser that holds the admin's Basic credentials would send
// them along (cross-site request forgery). The page's Origin must be an
// allowed host; the request's own Host, which a rebinding attacker chooses,
// proves nothing.
func (g *Auth) crossSite(r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "cross-site"
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host == "" || !g.hostAllowed(u.Host)
}

// failuresPerMinute is how many failed authentications an address may make
// in a minute before the next are refused.
const failuresPerMinute = 10

// throttled answers 429 to an address that failed to authenticate too often
// in the last minute.
func (g *Auth) throttled(w http.ResponseWriter, r *http.Request) bool {
	wait := g.throttle.wait(clientAddr(r.RemoteAddr))
	if wait == 0 {
		return false
	}
	g.failures.WithLabelValues("throttled").Inc()
	setRetryAfter(w.Header(), wait)
	problem(w, http.StatusTooManyRequests, "too many failed authentications from this address; wait before trying again")
	return true
}

func (g *Auth) failed(r *http.Request) {
	g.failures.WithLabelValues("failed").Inc()
	g.throttle.add(clientAddr(r.RemoteAddr))
}

// clientAddr is the address a request came from (host:port), without its
// port.
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}
