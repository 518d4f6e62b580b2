package deployments_test

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// runbookURL is where every alert's runbook_url points, followed by the
// anchor of the alert's section.
const runbookURL = "https://github.com/dashcache/dashcache/blob/main/docs/runbook.md#"

// alertRule is an alerting rule of prometheus/alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// alertRules returns the alerting rules of prometheus/alerts.yml.
func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts.yml"), &f); err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				rules = append(rules, r)
			}
		}
	}
	if len(rules) == 0 {
		t.Fatal("prometheus/alerts.yml has no alerting rule")
	}
	return rules
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file (lower case, spaces to hyphens, other punctuation dropped),
// each with its heading's level.
func headingAnchors(t *testing.T, file string) map[string]int {
	t.Helper()
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	anchors := map[string]int{}
	for line := range strings.Lines(string(readFile(t, file))) {
		if text := strings.TrimLeft(line, "#"); text != line && strings.HasPrefix(text, " ") {
			anchor := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(text)), ""), " ", "-")
			anchors[anchor] = len(line) - len(text)
		}
	}
	return anchors
}

// TestPrometheusLoadsAlerts: prometheus.yml loads alerts.yml, and the compose
// Prometheus mounts every rule file next to its prometheus.yml, where the
// relative path leads.
func TestPrometheusLoadsAlerts(t *testing.T) {
	t.Parallel()
	var cfg struct {
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/prometheus.yml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus.yml rule_files %q does not load alerts.yml", cfg.RuleFiles)
	}
	mounts := map[string]string{} // in the container -> in deployments/
	for _, v := range loadCompose(t)["prometheus"].Volumes {
		if parts := strings.Split(v, ":"); len(parts) >= 2 {
			mounts[parts[1]] = path.Clean(parts[0])
		}
	}
	var configDir string
	for in, src := range mounts {
		if src == "prometheus/prometheus.yml" {
			configDir = path.Dir(in)
		}
	}
	if configDir == "" {
		t.Fatal("compose.yaml: the prometheus service does not mount ./prometheus/prometheus.yml")
	}
	for _, f := range cfg.RuleFiles {
		readFile(t, path.Join("prometheus", f)) // relative to prometheus.yml
		if want := path.Join("prometheus", f); mounts[path.Join(configDir, f)] != want {
			t.Errorf("compose.yaml: the prometheus service does not mount ./%s at %s, where prometheus.yml's rule_files looks", want, path.Join(configDir, f))
		}
	}
}

// TestAlertsDocumented: every alert has a severity, a summary, a description,
// and a runbook_url to its own section of docs/runbook.md, whose sections
// (## headings) are all of alerts.
func TestAlertsDocumented(t *testing.T) {
	t.Parallel()
	anchors := headingAnchors(t, "../docs/runbook.md")
	alerts := map[string]bool{}
	for _, r := range alertRules(t) {
		alerts[strings.ToLower(r.Alert)] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s", r.Alert, a)
			}
		}
		anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookURL)
		switch {
		case !ok:
			t.Errorf("alert %s: runbook_url %q does not start with %s", r.Alert, r.Annotations["runbook_url"], runbookURL)
		case anchors[anchor] == 0:
			t.Errorf("alert %s: runbook_url's anchor #%s is no heading of docs/runbook.md", r.Alert, anchor)
		case anchor != strings.ToLower(r.Alert):
			t.Errorf("alert %s: runbook_url's anchor is #%s, want its own section, #%s", r.Alert, anchor, strings.ToLower(r.Alert))
		}
	}
	for anchor, level := range anchors {
		if level == 2 && !alerts[anchor] {
			t.Errorf("docs/runbook.md has a section #%s, but alerts.yml has no such alert", anchor)
		}
	}
}

// TestAlertsTested: alerts_test.yml, run by promtool in .ci/run, has for
// every alert a test case where it fires and one where it does not, and
// tests no alert that is gone.
func TestAlertsTested(t *testing.T) {
	t.Parallel()
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name          string `yaml:"name"`
			AlertRuleTest []struct {
				AlertName string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts_test.yml"), &f); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.RuleFiles, []string{"alerts.yml"}) {
		t.Errorf("alerts_test.yml rule_files %q, want [alerts.yml]", f.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		fired := map[string]bool{}
		for _, a := range tc.AlertRuleTest {
			fired[a.AlertName] = fired[a.AlertName] || len(a.ExpAlerts) > 0
		}
		for name, ok := range fired {
			fires[name] = fires[name] || ok
			quiet[name] = quiet[name] || !ok
		}
	}
	known := map[string]bool{}
	for _, r := range alertRules(t) {
		known[r.Alert] = true
		if !fires[r.Alert] {
			t.Errorf("alerts_test.yml has no test case where %s fires", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("alerts_test.yml has no test case where %s does not fire", r.Alert)
		}
	}
	for name := range fires {
		if !known[name] {
			t.Errorf("alerts_test.yml tests %s, which is no alert of alerts.yml", name)
		}
	}
}
