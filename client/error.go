package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors for the common answers, matched with errors.Is against
// an *Error (or an error that wraps one).
var (
	// ErrBadRequest: 400, a parameter or body the server does not accept
	// (the Detail says which and what it accepts), or 413, an admin
	// request's body over 64 KiB; also a report name Get refuses to send.
	ErrBadRequest = errors.New("client: bad request")
	// ErrUnauthorized: 401, no API key (or admin token), or an unknown one.
	ErrUnauthorized = errors.New("client: unauthorized")
	// ErrForbidden: 403, the API key may not read this customer (or the
	// request's Host or Origin is refused).
	ErrForbidden = errors.New("client: forbidden")
	// ErrNotFound: 404, a report name the catalogue does not have (the
	// Detail lists those it has), or a path the server does not serve.
	ErrNotFound = errors.New("client: not found")
	// ErrRateLimited: 429, the customer has too many reports on their way
	// or has used its daily budget, or this address failed to authenticate
	// too often; RetryAfter says when to ask again.
	ErrRateLimited = errors.New("client: rate limited")
	// ErrReportFailed: 502, the BI platform failed for this report in the
	// last 30 s; the Detail names the failure.
	ErrReportFailed = errors.New("client: the BI platform failed for this report")
	// ErrUnavailable: 503, Redis is unreachable, the BI back end is
	// failing for everyone (RetryAfter: the breaker's cool-down), or an
	// admin request's enqueue or invalidation failed.
	ErrUnavailable = errors.New("client: unavailable")
	// ErrPending: the report was still being computed when Get had to
	// stop asking (ctx's deadline came, or would have come, before the
	// next ask). The fill goes on; a later Get may find the report.
	ErrPending = errors.New("client: the report is still being computed")
)

// sentinels maps a status to its sentinel error.
var sentinels = map[int]error{
	http.StatusBadRequest:            ErrBadRequest,
	http.StatusUnauthorized:          ErrUnauthorized,
	http.StatusForbidden:             ErrForbidden,
	http.StatusNotFound:              ErrNotFound,
	http.StatusTooManyRequests:       ErrRateLimited,
	http.StatusBadGateway:            ErrReportFailed,
	http.StatusServiceUnavailable:    ErrUnavailable,
	http.StatusRequestEntityTooLarge: ErrBadRequest,
}

// Error is an error answer of the server: its status and, from its
// application/problem+json body (RFC 9457), title and detail. errors.Is
// matches it against the sentinel of its status (ErrNotFound for a 404,
// ErrRateLimited for a 429, ...).
type Error struct {
	Status int    // the HTTP status, such as 429
	Title  string // the problem's title; the status text if the body had none
	// Detail says what went wrong and what to do, in the server's words;
	// for an answer that is not problem+json (a proxy's error page), the
	// start of its body.
	Detail string
	// RetryAfter is the answer's Retry-After (on 429 and some 503s): how
	// long to wait before asking again; 0 when it had none.
	RetryAfter time.Duration
}

// Error says the status, title, detail and Retry-After.
func (e *Error) Error() string {
	msg := fmt.Sprintf("dashcache: %d %s", e.Status, e.Title)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return msg
}

// Is reports whether target is the sentinel error of e's status.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Status]
	return ok && s == target
}

// maxDetail bounds how much of an answer that is not problem+json goes into
// an Error's Detail.
const maxDetail = 512

// errorOf builds the *Error of an error answer whose body is body.
func errorOf(resp *http.Response, body []byte, now time.Time) *Error {
	e := &Error{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header, now)}
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if isProblem(resp.Header.Get("Content-Type")) && json.Unmarshal(body, &p) == nil {
		e.Title, e.Detail = p.Title, p.Detail
	} else {
		e.Detail = snippet(body)
	}
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	return e
}

// isProblem reports whether a Content-Type is application/problem+json.
func isProblem(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/problem+json")
}

// snippet returns the start of a body that is not problem+json, as one
// line of valid UTF-8.
func snippet(body []byte) string {
	if len(body) > maxDetail {
		body = body[:maxDetail]
		for len(body) > 0 && !utf8.Valid(body) {
			body = body[:len(body)-1]
		}
	}
	return strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "")), " ")
}

// retryAfter parses a Retry-After header: seconds, or an HTTP-date read
// against the answer's Date (else now). 0 for none, or one unreadable or
// past.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(min(max(secs, 0), int64(maxRetryAfter/time.Second))) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return min(max(at.Sub(now), 0), maxRetryAfter)
}

// maxRetryAfter bounds a Retry-After read (a day: the daily budget's is at
// most until midnight), so that no arithmetic on it overflows.
const maxRetryAfter = 24 * time.Hour
