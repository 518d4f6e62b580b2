package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/front/fronttest"
)

// adminToken is the admin token of the fixtures of this file.
const adminToken = "admin-token-0123456789"

// withAdminToken sets the fixture's admin token to adminToken.
func withAdminToken(c *api.Config) { c.Guard.AdminToken = adminToken }

// TestOversizedAdminBodyRefused: POST /v1/invalidate with the admin token
// and a body of 200 KB (past MaxAdminBody) is refused with a 413
// problem+json that reaches the client, though it is still sending when
// the refusal is written: 50 of 50, each on a connection of its own, none
// reset. No invalidation runs.
func TestOversizedAdminBodyRefused(t *testing.T) {
	f := newFixture(t, withAdminToken)
	addr := strings.TrimPrefix(f.url, "http://")
	body := `{"customers":["` + strings.Repeat("a", 200<<10-20) + `"]}`
	raw := fmt.Sprintf("POST /v1/invalidate HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, adminToken, len(body), body)
	var refused, cut int
	for range 50 {
		status, h, answer, err := fronttest.Send(addr, raw)
		switch {
		case err != nil:
			if cut == 0 {
				t.Log(err)
			}
			cut++
		case status == http.StatusRequestEntityTooLarge && h.Get("Content-Type") == "application/problem+json" && strings.Contains(answer, fmt.Sprint(api.MaxAdminBody)):
			refused++
		default:
			t.Errorf("%d %q %q, want 413 problem+json naming the bound", status, h.Get("Content-Type"), answer)
		}
	}
	if refused != 50 {
		t.Errorf("50 POSTs of 200 KB: %d answers of 413, %d cut short (reset or broken pipe); want 50 answers", refused, cut)
	}
	if n := len(f.invalidations); n != 0 {
		t.Errorf("%d invalidations ran", n)
	}
}
