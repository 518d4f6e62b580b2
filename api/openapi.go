package api

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPI is the OpenAPI 3.1 document of the HTTP API that Server serves:
// every path, its parameters, answers and authentication. The package's
// tests check their every request and answer against it.
//
//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document (YAML) of the HTTP API, as
// GET /openapi.yaml serves it.
func OpenAPI() []byte {
	return append([]byte(nil), openAPI...)
}

// openAPIType is the media type of the document (RFC 9512).
const openAPIType = "application/yaml"

// serveOpenAPI answers GET /openapi.yaml with the document, to anyone: it
// tells nothing that the API's answers do not.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, "the OpenAPI document is read with GET /openapi.yaml")
		return
	}
	h := w.Header()
	h.Set("Content-Type", openAPIType)
	h.Set("Content-Length", strconv.Itoa(len(openAPI)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(openAPI)
}
