package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/dashcache/dashcache/api"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
)

// TestOpenAPIDocument: the document is valid OpenAPI 3.1 (checked against
// the specification's own schema, which a broken copy fails), and GET
// /openapi.yaml serves it, without credentials, as YAML.
func TestOpenAPIDocument(t *testing.T) {
	if errs := validateDocument(t, api.OpenAPI()); errs != "" {
		t.Errorf("api/openapi.yaml is not valid OpenAPI 3.1: %s", errs)
	}
	if v := theContract(t).model.Version; !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %s, want 3.1.x", v)
	}
	broken := bytes.Replace(api.OpenAPI(), []byte("          description: The report.\n"), nil, 1)
	if bytes.Equal(broken, api.OpenAPI()) {
		t.Fatal("no response description to remove")
	}
	errs := validateDocument(t, broken)
	t.Logf("the broken copy: %s", errs)
	if !strings.Contains(errs, "description") {
		t.Errorf("a response without its description (which OpenAPI requires): %q, want a failure naming it", errs)
	}

	f := newFixture(t, withKeys(t, "acme-key-0123456789=acme"), withAdminToken)
	resp, body := f.do(t, http.MethodGet, "/openapi.yaml", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/yaml" || body != string(api.OpenAPI()) {
		t.Errorf("GET /openapi.yaml: %d %q, %d bytes; want 200 application/yaml with the document", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, body = f.do(t, http.MethodHead, "/openapi.yaml", "")
	if resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != int64(len(api.OpenAPI())) {
		t.Errorf("HEAD /openapi.yaml: %d, %d bytes, Content-Length %d; want 200, no body, the document's length", resp.StatusCode, len(body), resp.ContentLength)
	}
	if resp, _ := f.do(t, http.MethodPost, "/openapi.yaml", ""); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /openapi.yaml: %d Allow %q, want 405 GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// validateDocument validates an OpenAPI document against the OpenAPI
// specification's schema, and returns what fails ("": nothing).
func validateDocument(t *testing.T, doc []byte) string {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		return err.Error()
	}
	v, errs := validator.NewValidator(d)
	if len(errs) > 0 {
		t.Fatalf("building a validator: %v", errs)
	}
	_, verrs := v.ValidateDocument()
	return describe(verrs)
}
