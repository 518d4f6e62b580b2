package sqltest

import (
	"context"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// EnvMySQLURL names the MySQL or MariaDB server integration tests use, as
// a DSN of go-sql-driver/mysql of a user that may create databases:
// root@tcp(127.0.0.1:3306)/.
const EnvMySQLURL = "DASHCACHE_TEST_MYSQL_URL"

// MySQL creates an empty database of the test's own, dashcache_test_ and
// 16 random hex digits, in utf8mb4, on the server of
// DASHCACHE_TEST_MYSQL_URL, and returns the DSN with that database in place
// of the variable's. The database is dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	raw := os.Getenv(EnvMySQLURL)
	if raw == "" {
		missing(t, EnvMySQLURL+" is not set", "set it to a DSN such as root@tcp(127.0.0.1:3306)/ of a user that may create databases (.ci/run sets it)")
	}
	cfg, err := mysql.ParseDSN(raw)
	if err != nil {
		t.Fatalf("%s must be a go-sql-driver/mysql DSN, such as root@tcp(127.0.0.1:3306)/", EnvMySQLURL)
	}
	name := "dashcache_test_" + hex.EncodeToString(randomBytes(t, 8))
	cfg.DBName = ""
	adminDSN := cfg.FormatDSN()

	mysqlAdmin(t, adminDSN, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	t.Cleanup(func() { mysqlAdmin(t, adminDSN, "DROP DATABASE IF EXISTS `"+name+"`") })

	cfg.DBName = name
	return cfg.FormatDSN()
}

// mysqlAdmin runs one statement on the server of dsn.
func mysqlAdmin(t testing.TB, dsn, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("test MySQL (%s): %v", EnvMySQLURL, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		t.Fatalf("%s: %v (is the test MySQL of %s up?)", stmt, err, EnvMySQLURL)
	}
}
