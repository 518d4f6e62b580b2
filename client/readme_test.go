package client_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADMEExample: the Go example of the README's section "Go client"
// compiles against this package, as the body of a function of a package
// that exists only in an overlay.
func TestREADMEExample(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on the PATH")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Go client\n")
	_, code, ok2 := strings.Cut(section, "\n```go\n")
	code, _, ok3 := strings.Cut(code, "\n```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`../README.md has no section "### Go client" with a go code block`)
	}
	src := `package readme

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dashcache/dashcache/client"
)

type Row struct{}

func read(ctx context.Context) error {
` + code + `
}
`
	dir := t.TempDir()
	file := filepath.Join(dir, "readme.go")
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	pkg, err := filepath.Abs("readmeexample")
	if err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(pkg, "readme.go"): file}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goTool, "build", "-overlay="+filepath.Join(dir, "overlay.json"), "-o", os.DevNull, "./readmeexample")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("the README's Go example does not compile (%v):\n%s\nas compiled:\n%s", err, out, src)
	}
}
