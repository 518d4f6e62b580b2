// Package sqltest gives integration tests a PostgreSQL database of their own
// (Postgres) on the real server named by DASHCACHE_TEST_POSTGRES_URL, created
// empty and dropped when the test ends, or a private PostgreSQL server that
// counts every execution (PostgresServer). Without what they need the tests
// are skipped, except under CI=true, where they fail: CI must never pass by
// skipping (.ci/run sets the variable).
package sqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvPostgresURL names the PostgreSQL server integration tests use, as a
// postgres:// URL of a user that may create databases:
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
const EnvPostgresURL = "DASHCACHE_TEST_POSTGRES_URL"

// Postgres creates an empty database of the test's own, dashcache_test_
// and 16 random hex digits, in UTF8 with the C locale, on the server of
// DASHCACHE_TEST_POSTGRES_URL, and returns the URL with that database in
// place of the variable's. The database is dropped when the test ends,
// sessions still on it included (DROP DATABASE ... WITH (FORCE)).
func Postgres(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(EnvPostgresURL)
	if raw == "" {
		missing(t, EnvPostgresURL+" is not set", "set it to a postgres:// URL of a user that may create databases (.ci/run sets it)")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		t.Fatalf("%s must be a postgres:// URL, such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", EnvPostgresURL)
	}
	name := "dashcache_test_" + hex.EncodeToString(randomBytes(t, 8))
	ident := pgx.Identifier{name}.Sanitize()

	admin(t, raw, "CREATE DATABASE "+ident+" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
	t.Cleanup(func() { admin(t, raw, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)") })

	u.Path = "/" + name
	return u.String()
}

// missing skips the test for want of what, or fails it under CI=true: CI
// must never pass by skipping.
func missing(t testing.TB, what, how string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: integration tests need it under CI; %s", what, how)
	}
	t.Skipf("%s; %s to run this integration test", what, how)
}

// admin runs one statement on the database of url.
func admin(t testing.TB, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("test PostgreSQL (%s) is unreachable: %v", EnvPostgresURL, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
