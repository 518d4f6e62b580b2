// Package yamlfile reads the service's YAML files (the warming plans, the
// report catalogue) one way: one document, and a field the file's types do
// not have is an error that says which fields are accepted.
package yamlfile

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Decode decodes data, one YAML document, into v. accepted maps a type as
// yaml names it in its errors ("scheduler.Plan") to what it accepts ("a plan
// accepts name, cron, ..."); empty and several are the errors of a file
// with no document and of one with more.
func Decode(data []byte, v any, accepted map[string]string, empty, several string) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New(empty)
		}
		return explain(err, accepted)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return errors.New(several)
	}
	return nil
}

// explain rewrites yaml's "field x not found in type T" into words that
// say which fields T accepts.
func explain(err error, accepted map[string]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	var pairs []string
	for typ, says := range accepted {
		pairs = append(pairs, "not found in type "+typ, "is not known; "+says)
	}
	r := strings.NewReplacer(pairs...)
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = r.Replace(m)
	}
	return errors.New(strings.Join(msgs, "\n"))
}
