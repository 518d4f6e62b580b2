package front_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dashcache/dashcache/internal/front/fronttest"
)

// TestRefusalReachesClient: a refused request whose client is still
// sending (a body past its bound, a header past its bound, a header that
// cannot be read, followed by 200 KB) does not get its connection reset:
// the client sends its request whole, then reads the refusal. 50 clients
// for each, each on a connection of its own.
func TestRefusalReachesClient(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("a", 200<<10)
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"a body of 200 KB", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 204800\r\n\r\n" + big, http.StatusRequestEntityTooLarge},
		{"a header of 200 KB", "GET /fast HTTP/1.1\r\nHost: x\r\nX-Big: " + big + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"two Content-Lengths", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 204800\r\nContent-Length: 204801\r\n\r\n" + big, http.StatusBadRequest},
	} {
		var refused, cut int
		for range 50 {
			status, h, body, err := fronttest.Send(f.addr, tc.raw)
			switch {
			case err != nil:
				if cut == 0 {
					t.Logf("%s: %v", tc.name, err)
				}
				cut++
			case status == tc.status && h.Get("Content-Type") == "application/problem+json" && strings.Contains(body, `"detail"`):
				refused++
			default:
				t.Errorf("%s: %d %q %q, want %d problem+json", tc.name, status, h.Get("Content-Type"), body, tc.status)
			}
		}
		t.Logf("%s, 50 times: %d answers of %d, %d cut short", tc.name, refused, tc.status, cut)
		if cut > 0 {
			t.Errorf("%s, 50 times: %d cut short (reset or broken pipe), %d answers of %d; want 50 answers", tc.name, cut, refused, tc.status)
		}
	}
	if n := f.slow.Load() + f.fast.Load(); n != 0 {
		t.Errorf("the handlers were given %d of the refused requests", n)
	}
}
