package cubetest

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestServerChecksTokens: the fake takes only what Cube (and the
// queryRewrite the README asks for) would: a token signed with the secret,
// HS256, with an exp in the future and, for a load, the customer the
// query's filter reads.
func TestServerChecksTokens(t *testing.T) {
	t.Parallel()
	const secret = "cubetest-secret"
	s := &Server{Secret: secret}
	srv := Start(t, s)
	now := time.Now()
	sign := func(key string, method jwt.SigningMethod, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(method, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	valid := jwt.MapClaims{"customer": "acme", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	const query = `{"query":{"measures":["Orders.count"],"filters":[{"and":[{"member":"Orders.customer","operator":"equals","values":["acme"]}]}]}}`
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"load", http.MethodPost, LoadPath, sign(secret, jwt.SigningMethodHS256, valid), query, 200},
		{"load, Bearer", http.MethodPost, LoadPath, "Bearer " + sign(secret, jwt.SigningMethodHS256, valid), query, 200},
		{"meta without a customer", http.MethodGet, MetaPath, sign(secret, jwt.SigningMethodHS256, jwt.MapClaims{"exp": now.Add(time.Minute).Unix()}), "", 200},
		{"another secret", http.MethodPost, LoadPath, sign("other", jwt.SigningMethodHS256, valid), query, 403},
		{"meta, another secret", http.MethodGet, MetaPath, sign("other", jwt.SigningMethodHS256, valid), "", 403},
		{"HS512", http.MethodPost, LoadPath, sign(secret, jwt.SigningMethodHS512, valid), query, 403},
		{"no exp", http.MethodPost, LoadPath, sign(secret, jwt.SigningMethodHS256, jwt.MapClaims{"customer": "acme"}), query, 403},
		{"expired", http.MethodPost, LoadPath, sign(secret, jwt.SigningMethodHS256, jwt.MapClaims{"customer": "acme", "exp": now.Add(-time.Minute).Unix()}), query, 403},
		{"no customer", http.MethodPost, LoadPath, sign(secret, jwt.SigningMethodHS256, jwt.MapClaims{"exp": now.Add(time.Minute).Unix()}), query, 403},
		{"another customer", http.MethodPost, LoadPath, sign(secret, jwt.SigningMethodHS256, jwt.MapClaims{"customer": "globex", "exp": now.Add(time.Minute).Unix()}), query, 403},
		{"no token", http.MethodPost, LoadPath, "", query, 403},
		{"elsewhere", http.MethodGet, "/cubejs-api/v1/sql", sign(secret, jwt.SigningMethodHS256, valid), "", 404},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tc.token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	if n, m := len(s.Loads()), s.Metas(); n != 2 || m != 1 {
		t.Errorf("%d loads and %d metas accepted, want 2 and 1", n, m)
	}
}
