package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/dashcache/dashcache"
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

// bearer returns the token of an "Authorization: Bearer TOKEN" header, or "".
func bearer(r *http.Request) string {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// authenticate returns the access of the request's API key. ok is false, and
// a 401 has been written, when keys are configured and the request has none
// that is valid. Without configured keys every request may read everything.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (a access, ok bool) {
	if s.cfg.APIKeys == nil {
		return access{all: true}, true
	}
	token := bearer(r)
	a, ok = s.cfg.APIKeys[sha256.Sum256([]byte(token))]
	if token == "" || !ok {
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

func (a access) allows(customer string) bool {
	return a.all || a.customers[customer]
}

// admin guards the admin endpoints: with DASHCACHE_ADMIN_TOKEN set, a request
// needs HTTP Basic admin:TOKEN or Bearer TOKEN; without it, only requests from
// loopback are served.
func (s *Server) admin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossSite(r) {
			problem(w, http.StatusForbidden, "admin changes must come from this server's own pages (the Origin header names another site)")
			return
		}
		if s.cfg.AdminToken == "" {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				problem(w, http.StatusForbidden, "admin endpoints answer only on loopback while DASHCACHE_ADMIN_TOKEN is unset")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		token := bearer(r)
		if user, pass, ok := r.BasicAuth(); ok && user == "admin" {
			token = pass
		}
		if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="dashcache admin", charset="UTF-8"`)
			problem(w, http.StatusUnauthorized, "admin endpoints need HTTP Basic admin:<DASHCACHE_ADMIN_TOKEN> or Authorization: Bearer <DASHCACHE_ADMIN_TOKEN>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossSite reports whether a state-changing request comes from another site's
// page: a browser that holds the admin's Basic credentials would send them along
// (cross-site request forgery).
func crossSite(r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return r.Header.Get("Sec-Fetch-Site") == "cross-site"
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host != r.Host
}
