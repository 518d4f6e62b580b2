package api

import (
	"encoding/json"
	"net/http"
)

// problem writes an RFC 9457 problem+json response. detail must tell a person
// what to do; it never carries internals such as Redis addresses or stacks.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(Problem(status, detail))
}

// Problem returns the problem+json body of an error answer.
func Problem(status int, detail string) []byte {
	b, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}{"about:blank", http.StatusText(status), status, detail})
	return append(b, '\n')
}
