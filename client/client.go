// Package client reads reports from a dashcache service over its HTTP API
// (docs/http-api.md), for Go programs: a dashboard's back end, a report
// export, a job that warms or invalidates reports.
//
// Client.Get reads a report and does what the API asks of a reader: it asks
// again while the report is being computed (202), waits out a Retry-After
// (429, 503) when ctx's deadline allows, revalidates a report it has read
// before (If-None-Match; a 304 returns the copy it kept), and returns error
// answers as an *Error, matched with errors.Is against ErrNotFound,
// ErrRateLimited and the other sentinels. Client.Warm and Client.Invalidate
// are the admin endpoints.
//
// A Client is safe for concurrent use; make one per service and keep it.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dashcache/dashcache"
)

// Defaults and limits of Config.
const (
	DefaultWait         = 10 * time.Second      // of Config.Wait: the server's own default
	MaxWait             = 30 * time.Second      // of Config.Wait: the most the server accepts
	DefaultMaxRetryWait = time.Minute           // of Config.MaxRetryWait
	DefaultCacheBytes   = 16 << 20              // of Config.CacheBytes
	DefaultUserAgent    = "dashcache-go-client" // of Config.UserAgent
	// DefaultTimeout bounds each request of the default HTTP client: a
	// read may be held MaxWait.
	DefaultTimeout = MaxWait + 15*time.Second
)

// Pauses between two asks of a report being computed: the 202's
// Retry-After (the server sends 1 s), within these bounds.
const (
	minPendingPause = 100 * time.Millisecond
	maxPendingPause = 5 * time.Second
)

// Config configures a Client. Zero fields take the defaults their comments
// state.
type Config struct {
	// BaseURL is where the API listens, such as
	// "http://dashcache-api:8080" (a path is kept, for an API behind a
	// proxy under a prefix). Required.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer" with every read (a key of
	// the server's DASHCACHE_API_KEYS). Default: none, for a server
	// without API keys.
	APIKey string
	// AdminToken is sent as "Authorization: Bearer" with Warm and
	// Invalidate (the server's DASHCACHE_ADMIN_TOKEN). Default: none; a
	// server without a token takes admin requests from loopback only.
	AdminToken string
	// HTTPClient sends the requests; its Timeout, if any, must be longer
	// than Wait. Default: one with a timeout of DefaultTimeout per request,
	// the dial and TLS timeouts of http.DefaultTransport, and 16 idle
	// connections kept per host.
	HTTPClient *http.Client
	// UserAgent is sent with every request (the server's access log shows
	// it). Default: DefaultUserAgent.
	UserAgent string
	// Wait is how long the server may hold a read of a report that is
	// being computed, before it answers 202 (the wait parameter), at most
	// MaxWait; each read asks for no more than 9/10 of what is left before
	// ctx's deadline. Default: DefaultWait; negative: not at all, every
	// read of a report not ready is answered 202 at once.
	Wait time.Duration
	// MaxRetryWait is the longest Retry-After (of a 429 or a 503) that a
	// call waits out before it asks again, if ctx's deadline allows; an
	// answer with a longer one, or none, is returned at once as an *Error.
	// Default: DefaultMaxRetryWait; negative: none is waited out.
	MaxRetryWait time.Duration
	// CacheBytes bounds the reports (bodies and ETags) that Get keeps to
	// revalidate them, the least recently read dropped first. Default:
	// DefaultCacheBytes; negative: none kept, every read is a full one.
	CacheBytes int64
}

// Client calls one dashcache service. It is safe for concurrent use.
type Client struct {
	cfg   Config
	base  *url.URL
	http  *http.Client
	cache *cache
}

// New returns a client of the service at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	cfg.UserAgent = cmp.Or(cfg.UserAgent, DefaultUserAgent)
	cfg.Wait = max(cmp.Or(cfg.Wait, DefaultWait), 0)
	cfg.MaxRetryWait = max(cmp.Or(cfg.MaxRetryWait, DefaultMaxRetryWait), 0)
	cfg.CacheBytes = cmp.Or(cfg.CacheBytes, DefaultCacheBytes)
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		hc = &http.Client{Timeout: DefaultTimeout, Transport: t}
	}
	return &Client{cfg: cfg, base: base, http: hc, cache: newCache(cfg.CacheBytes)}, nil
}

// validate checks cfg, its defaults set, and returns its base URL parsed.
func (cfg *Config) validate() (*url.URL, error) {
	var errs []error
	base, err := url.Parse(cfg.BaseURL)
	switch {
	case cfg.BaseURL == "":
		errs = append(errs, errors.New("BaseURL is required, such as http://dashcache-api:8080"))
	case err != nil:
		errs = append(errs, fmt.Errorf("BaseURL: %w", err))
	case base.Scheme != "http" && base.Scheme != "https" || base.Host == "":
		errs = append(errs, fmt.Errorf("BaseURL must be an http:// or https:// URL with a host, such as http://dashcache-api:8080; got %q", cfg.BaseURL))
	case base.RawQuery != "" || base.Fragment != "" || base.User != nil:
		errs = append(errs, errors.New("BaseURL must have no query, fragment or user: the API key and admin token have fields of their own"))
	}
	if cfg.Wait > MaxWait {
		errs = append(errs, fmt.Errorf("Wait is %s; the server accepts at most %s", cfg.Wait, MaxWait))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("client: bad Config: %w", err)
	}
	base.Path = trimSlash(base.Path)
	base.RawPath = trimSlash(base.RawPath)
	return base, nil
}

func trimSlash(path string) string {
	for len(path) > 0 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	return path
}

// Get reads a report (its name in the catalogue; "" for the default
// report) of customer over from..to (dates YYYY-MM-DD, both included).
//
// While the report is being computed, Get asks again, after the pause the
// server asks for, until ctx's deadline (without one: until ctx ends); if the
// next ask would come after the deadline it returns ErrPending at once. It
// waits out a Retry-After of a 429 or 503 likewise, up to MaxRetryWait, and
// else returns that answer's *Error at once. A report it read before, and
// still holds, is revalidated: on 304 Not Modified it returns the copy it
// kept, with Revalidated set.
func (c *Client) Get(ctx context.Context, report, customer, from, to string) (*Report, error) {
	if report != "" {
		// The name is a path segment: one the server could not have
		// (such as "..") must not send the request elsewhere.
		if err := dashcache.CheckReportName(report); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	k := readKey{report, customer, from, to}
	for {
		kept := c.cache.get(k)
		resp, body, err := c.exchange(ctx, func(ctx context.Context) (*http.Request, error) {
			return c.readRequest(ctx, k, kept)
		})
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return c.received(k, resp.Header, body)
		case resp.StatusCode == http.StatusNotModified && kept != nil:
			rep, err := parseReport(bytes.Clone(kept.body))
			if err != nil {
				return nil, err
			}
			rep.ETag = kept.etag
			rep.setHeaders(resp.Header)
			rep.Revalidated = true
			return rep, nil
		case resp.StatusCode == http.StatusAccepted:
			pause := min(max(cmp.Or(retryAfter(resp.Header, time.Now()), time.Second), minPendingPause), maxPendingPause)
			if err := sleep(ctx, pause); errors.Is(err, errPastDeadline) {
				return nil, fmt.Errorf("%w: %s, and ctx's deadline comes before the next ask", ErrPending, k)
			} else if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrPending, k, err)
			}
		default:
			return nil, fmt.Errorf("client: %s: unexpected answer %s", k, resp.Status)
		}
	}
}

// received returns the report of a 200 answer, and keeps it to revalidate.
func (c *Client) received(k readKey, h http.Header, body []byte) (*Report, error) {
	rep, err := parseReport(body)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, k)
	}
	rep.setHeaders(h)
	if rep.ETag != "" && c.cache != nil {
		c.cache.put(&held{key: k, etag: rep.ETag, body: bytes.Clone(body),
			size: int64(len(body) + len(rep.ETag) + len(k.report) + len(k.customer) + len(k.from) + len(k.to))})
	}
	return rep, nil
}

// readRequest builds a read of k, revalidating kept if there is one.
func (c *Client) readRequest(ctx context.Context, k readKey, kept *held) (*http.Request, error) {
	u := c.url("/v1/reports")
	if k.report != "" {
		u = u.JoinPath(k.report) // a checked name: nothing to escape
	}
	u.RawQuery = url.Values{
		"customer": {k.customer}, "from": {k.from}, "to": {k.to},
		"wait": {strconv.FormatInt(c.wait(ctx).Milliseconds(), 10) + "ms"},
	}.Encode()
	req, err := c.newRequest(ctx, http.MethodGet, u, c.cfg.APIKey, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if kept != nil {
		req.Header.Set("If-None-Match", kept.etag)
	}
	return req, nil
}

// wait is the wait parameter of a read under ctx: Config.Wait, and at most
// 9/10 of what is left before ctx's deadline, so that the server's 202
// comes back before it.
func (c *Client) wait(ctx context.Context) time.Duration {
	w := c.cfg.Wait
	if deadline, ok := ctx.Deadline(); ok {
		left := time.Until(deadline)
		w = min(w, left-left/10)
	}
	return max(w, 0)
}

// url returns the URL of path on the service.
func (c *Client) url(path string) *url.URL {
	return c.base.JoinPath(path)
}

// newRequest builds a request with the client's User-Agent and token as a
// bearer token, if set.
func (c *Client) newRequest(ctx context.Context, method string, u *url.URL, token string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// exchange sends the request that build makes and returns the answer, its
// body read whole; an error answer (4xx, 5xx) is returned as an *Error. A
// 429 or 503 is asked again after its Retry-After when that is at most
// MaxRetryWait and ends before ctx's deadline; else its *Error is returned at
// once.
func (c *Client) exchange(ctx context.Context, build func(context.Context) (*http.Request, error)) (*http.Response, []byte, error) {
	for {
		req, err := build(ctx)
		if err != nil {
			return nil, nil, err
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("client: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("client: reading the answer of %s %s: %w", req.Method, req.URL.Path, err)
		}
		if resp.StatusCode < 400 {
			return resp, body, nil
		}
		e := errorOf(resp, body, time.Now())
		retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
		if !retry || e.RetryAfter == 0 || e.RetryAfter > c.cfg.MaxRetryWait {
			return nil, nil, e
		}
		if err := sleep(ctx, e.RetryAfter); errors.Is(err, errPastDeadline) {
			return nil, nil, e
		} else if err != nil {
			return nil, nil, fmt.Errorf("client: %w while waiting to ask again after %w", err, e)
		}
	}
}

// errPastDeadline: a wait would end after ctx's deadline.
var errPastDeadline = errors.New("client: the wait would end after ctx's deadline")

// sleep waits d, or returns errPastDeadline at once if that would end after
// ctx's deadline, or ctx's cause if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(d).After(deadline) {
		return errPastDeadline
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// postAdmin posts in, as JSON, to path with the admin token and decodes the
// answer into out.
func (c *Client) postAdmin(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	resp, answer, err := c.exchange(ctx, func(ctx context.Context) (*http.Request, error) {
		return c.newRequest(ctx, http.MethodPost, c.url(path), c.cfg.AdminToken, body)
	})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("client: POST %s: unexpected answer %s", path, resp.Status)
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("client: POST %s: the answer is not the JSON expected: %w", path, err)
	}
	return nil
}
