package sqltest

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestPostgres: the test gets an empty UTF8 database of its own, which is
// gone once the test ends, though a session was still open on it.
func TestPostgres(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("own database", func(t *testing.T) {
		url := Postgres(t)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		// Left open: the drop must end it.
		var enc string
		if err := conn.QueryRow(ctx, "SELECT current_database(), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()").Scan(&name, &enc); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "dashcache_test_") || enc != "UTF8" {
			t.Errorf("database %q in %s, want dashcache_test_... in UTF8", name, enc)
		}
		var tables int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("%d tables in a new database, want 0", tables)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" { // skipped, or failed before it knew the name
		return
	}
	conn, err := pgx.Connect(ctx, os.Getenv(EnvPostgresURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// TestMySQL: the test gets an empty utf8mb4 database of its own, which is
// gone once the test ends, though a connection was still open on it.
func TestMySQL(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("own database", func(t *testing.T) {
		db, err := sql.Open("mysql", MySQL(t))
		if err != nil {
			t.Fatal(err)
		}
		// Left open: the drop must not wait for it.
		db.SetMaxOpenConns(1)
		var charset string
		if err := db.QueryRowContext(ctx, "SELECT DATABASE(), @@character_set_database").Scan(&name, &charset); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "dashcache_test_") || charset != "utf8mb4" {
			t.Errorf("database %q in %s, want dashcache_test_... in utf8mb4", name, charset)
		}
		var tables int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("%d tables in a new database, want 0", tables)
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" { // skipped, or failed before it knew the name
		return
	}
	db, err := sql.Open("mysql", os.Getenv(EnvMySQLURL))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}
