package front_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestParserPins pins what fasthttp (v1.78) does with requests that HTTP
// parsers disagree on, the ground of request smuggling and of header
// injection, as seen through a front: the answers, in order, on a
// connection that carries the request and then a last GET /fast with
// Connection: close, and what the slow handler was given. A fasthttp
// upgrade that changes any of it fails here.
func TestParserPins(t *testing.T) {
	smuggled := "0\n\nGET /fast HTTP/1.1\nHost: x\n\n"        // a chunked body's end, then a request
	length := len(strings.ReplaceAll(smuggled, "\n", "\r\n")) // as sent
	for _, tc := range []struct {
		name, raw string
		// want is the answers: "fast" for the fast handler's, "echo" for
		// /echo's, the status of a refusal.
		want string
		echo *echoed // what the first /echo was given: URI, Host, Body, and Header unless nil
	}{
		// Content-Length and Transfer-Encoding both: the body is read
		// chunked, the connection closed after the answer, and the request
		// the Content-Length would have hidden in the body is not served.
		{"Content-Length, then chunked", fmt.Sprintf("POST /echo HTTP/1.1\nHost: x\nContent-Length: %d\nTransfer-Encoding: chunked\n\n%s", length, smuggled),
			"echo", &echoed{URI: "/echo", Host: "x"}},
		{"chunked, then Content-Length", fmt.Sprintf("POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nContent-Length: %d\n\n%s", length, smuggled),
			"echo", &echoed{URI: "/echo", Host: "x"}},
		{"chunked with a body, and a short Content-Length", "POST /echo HTTP/1.1\nHost: x\nContent-Length: 3\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\nGET /fast HTTP/1.1\nHost: x\n\n",
			"echo", &echoed{URI: "/echo", Host: "x", Body: "abc"}},
		{"two Content-Lengths, equal", "POST /echo HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 3\n\nabc", "400", nil},
		{"two Content-Lengths, different", "POST /echo HTTP/1.1\nHost: x\nContent-Length: 3\nContent-Length: 4\n\nabcd", "400", nil},
		{"a Content-Length list", "POST /echo HTTP/1.1\nHost: x\nContent-Length: 3, 3\n\nabc", "400", nil},
		{"two Hosts", "GET /echo HTTP/1.1\nHost: x\nHost: y\n\n", "400", nil},
		{"Transfer-Encoding: gzip, chunked", "POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: gzip, chunked\n\n3\nabc\n0\n\n", "400", nil},
		{"Transfer-Encoding: chunked, chunked", "POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked, chunked\n\n3\nabc\n0\n\n", "400", nil},
		{"Transfer-Encoding twice", "POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n", "400", nil},
		// RFC 9112 (6.3) wants a 400 here: fasthttp reads the request as
		// one without a body, and what follows its header as the next
		// request. Each request is authenticated on its own; a proxy in
		// front must not read identity as "until the connection closes".
		{"Transfer-Encoding: identity", "POST /echo HTTP/1.1\nHost: x\nTransfer-Encoding: identity\n\nGET /fast HTTP/1.1\nHost: x\n\n",
			"echo fast fast", &echoed{URI: "/echo", Host: "x"}},
		// obs-fold: a continuation line is joined to the header field it
		// continues; it never becomes a field of its own.
		{"obs-fold", "GET /echo HTTP/1.1\nHost: x\nX-Test: a\n X-Injected: yes\n\n",
			"echo fast", &echoed{URI: "/echo", Host: "x", Header: http.Header{"X-Test": {"a X-Injected: yes"}}}},
		{"obs-fold of an Authorization", "GET /echo HTTP/1.1\nHost: x\nX-Test: a\n\tAuthorization: Bearer t\n\n",
			"echo fast", &echoed{URI: "/echo", Host: "x", Header: http.Header{"X-Test": {"a Authorization: Bearer t"}}}},
		{"obs-fold of the Host", "GET /echo HTTP/1.1\nHost: x\n X-Injected: yes\n\n", "400", nil},
		{"obs-fold of the request line", "GET /echo HTTP/1.1\n X-Injected: yes\nHost: x\n\n", "400", nil},
		// The absolute form: its host is the request's Host, and the slow
		// handler gets the origin form.
		{"absolute form", "GET http://other.example/echo?q=1 HTTP/1.1\nHost: x\n\n",
			"echo fast", &echoed{URI: "/echo?q=1", Host: "other.example", Header: http.Header{}}},
		{"absolute form of the fast path", "GET http://other.example/fast HTTP/1.1\nHost: x\n\n", "fast fast", nil},
		// Paths: fasthttp decodes %2f and %2e and removes dot segments and
		// empty ones before the handlers see the path (c.Path(), and the
		// slow handler's URI); c.URI().PathOriginal() keeps the original.
		{"dot segments", "GET /x/../echo HTTP/1.1\nHost: x\n\n", "echo fast", &echoed{URI: "/echo", Host: "x", Header: http.Header{}}},
		{"encoded dot segments", "GET /x/..%2fecho HTTP/1.1\nHost: x\n\n", "echo fast", &echoed{URI: "/echo", Host: "x", Header: http.Header{}}},
		{"encoded dots", "GET /x/%2e%2e/echo HTTP/1.1\nHost: x\n\n", "echo fast", &echoed{URI: "/echo", Host: "x", Header: http.Header{}}},
		{"an empty segment", "GET //echo HTTP/1.1\nHost: x\n\n", "echo fast", &echoed{URI: "/echo", Host: "x", Header: http.Header{}}},
		{"dot segments to the fast path", "GET /echo/../fast HTTP/1.1\nHost: x\n\n", "fast fast", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			got, echoes := f.answers(t, tc.raw)
			if got != tc.want {
				t.Errorf("answers %q, want %q", got, tc.want)
			}
			if tc.echo == nil {
				return
			}
			if len(echoes) == 0 {
				t.Fatal("no /echo answered")
			}
			e := echoes[0]
			if e.URI != tc.echo.URI || e.Host != tc.echo.Host || e.Body != tc.echo.Body || tc.echo.Header != nil && !reflect.DeepEqual(e.Header, tc.echo.Header) {
				t.Errorf("/echo got URI %q, Host %q, body %q, header %v; want %q, %q, %q, %v", e.URI, e.Host, e.Body, e.Header, tc.echo.URI, tc.echo.Host, tc.echo.Body, tc.echo.Header)
			}
		})
	}
}

// answers sends raw, then a last GET /fast with Connection: close, on a
// connection of its own, and reads every answer until the server closes
// it. It returns them as words ("fast" for the fast handler's, "echo" for
// /echo's, the status of any other), and what each /echo was given.
func (f *fixture) answers(t *testing.T, raw string) (string, []echoed) {
	t.Helper()
	c := f.dial(t)
	c.send(raw + "GET /fast HTTP/1.1\nHost: x\nConnection: close\n\n")
	var words []string
	var echoes []echoed
	for {
		if _, err := c.r.Peek(1); err == io.EOF {
			return strings.Join(words, " "), echoes
		}
		status, h, body := c.read("GET")
		var e echoed
		switch {
		case status == http.StatusOK && body == "fast":
			words = append(words, "fast")
		case status == http.StatusOK && h.Get("Content-Type") == "application/json" && json.Unmarshal([]byte(body), &e) == nil:
			words = append(words, "echo")
			echoes = append(echoes, e)
		default:
			words = append(words, fmt.Sprint(status))
		}
	}
}
