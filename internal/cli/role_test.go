package cli

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRolesDocumented: README's role table lists exactly Roles, in order, and
// its settings table gives each role's default listen address; the usage
// names every role.
func TestRolesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	_, roles, ok := strings.Cut(readme, "\n## Roles\n")
	if !ok {
		t.Fatal("README.md has no ## Roles section")
	}
	var documented []string
	row := regexp.MustCompile("^\\| `([a-z]+)`")
	for line := range strings.Lines(roles) {
		if strings.HasPrefix(line, "#") {
			break
		}
		if m := row.FindStringSubmatch(line); m != nil {
			documented = append(documented, m[1])
		}
	}
	var names []string
	for _, r := range Roles {
		names = append(names, r.Name)
	}
	if !slices.Equal(documented, names) {
		t.Errorf("README's role table lists %q, want %q", documented, names)
	}

	var listenRow string
	for line := range strings.Lines(readme) {
		if strings.HasPrefix(line, "| `DASHCACHE_LISTEN`") {
			listenRow = line
		}
	}
	u := usage()
	for _, r := range Roles {
		if r.Listen != "" && !regexp.MustCompile(`\b`+r.Name+`\b[^|]*`+regexp.QuoteMeta("`"+r.Listen+"`")).MatchString(listenRow) {
			t.Errorf("README's DASHCACHE_LISTEN row %q does not give %s's default %s", listenRow, r.Name, r.Listen)
		}
		if !strings.Contains(u, "  "+r.Name+" ") {
			t.Errorf("the usage does not name role %s:\n%s", r.Name, u)
		}
	}
}
