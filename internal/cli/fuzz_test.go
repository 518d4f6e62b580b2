package cli

import (
	"strings"
	"testing"
)

// FuzzLoadConfig: no environment makes the settings loader panic, and every
// error names the variable it is about.
func FuzzLoadConfig(f *testing.F) {
	for _, s := range []string{
		"DASHCACHE_PROVIDER_RATE=20\nDASHCACHE_PROVIDER_BURST=5",
		"DASHCACHE_REDIS_URL=redis://u:p@h:1/2\nDASHCACHE_CACHE_REDIS_URL=%zz",
		"DASHCACHE_API_KEYS=key-0123456789abcdef=acme|globex\nDASHCACHE_LISTEN=0.0.0.0:8080",
		"DASHCACHE_SIM_LATENCY=2s-1s\nDASHCACHE_EARLIEST_DATE=2025-02-30\nDASHCACHE_ALLOWED_HOSTS=a,,b:1",
		"DASHCACHE_REDIS_CLUSTER_ADDRS=a:1,b\nDASHCACHE_TIMEZONE=Mars/Base\nDASHCACHE_BREAKER_COOLDOWN=0s",
	} {
		f.Add("all", s)
	}
	f.Fuzz(func(t *testing.T, role, envs string) {
		env := map[string]string{}
		for line := range strings.Lines(envs) {
			name, value, _ := strings.Cut(strings.TrimSpace(line), "=")
			env[name] = value
		}
		_, err := LoadConfig(role, func(k string) string { return env[k] })
		if err == nil {
			return
		}
		for _, e := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(e, "DASHCACHE_") && !strings.HasPrefix(e, "unknown role") {
				t.Fatalf("an error that names no variable: %q", e)
			}
		}
	})
}
