package redistest

import "testing"

// Program returns the path of redis-server or redis-cli (name), for a test
// that runs it its own way, or skips the test (fails it under CI=true).
func Program(t testing.TB, name string) string {
	t.Helper()
	return lookPath(t, name)
}
