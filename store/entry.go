package store

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
)

// A cached entry is a one-line header followed by the final response body,
// as it is served:
//
//	dc3 <computed_at unix ms> <fresh_until unix ms> <compute ms> <body bytes> <identity|gzip> <etag>\n<body>
//
// so that serving a hit needs no JSON decoding or encoding, only a byte copy
// (a body over CompressAbove is stored gzip-compressed, and served so to
// clients that accept it). The body's length in the header tells a truncated
// entry from a whole one.
const entryMagic = "dc3 "

// CompressAbove is the size of a report's JSON above which its entry holds it
// gzip-compressed.
const CompressAbove = 1024

// Entry is a parsed cached report.
type Entry struct {
	ComputedAt  time.Time
	FreshUntil  time.Time     // served as a hit until then, as stale after
	ComputeTime time.Duration // how long the BI call took (for early refresh)
	ETag        string        // quoted, as sent in the ETag header: of the JSON
	Gzip        bool          // Body is the JSON gzip-compressed
	GzipETag    string        // the ETag of the gzip representation, if Gzip
	Body        string        // the response body as stored
}

// JSON returns the report's JSON: Body, decompressed if need be.
func (e Entry) JSON() (string, error) {
	if !e.Gzip {
		return e.Body, nil
	}
	zr, err := gzip.NewReader(strings.NewReader(e.Body))
	if err != nil {
		return "", fmt.Errorf("decompressing a cached report: %w", err)
	}
	var b strings.Builder
	if _, err := io.Copy(&b, zr); err != nil {
		return "", fmt.Errorf("decompressing a cached report: %w", err)
	}
	return b.String(), nil
}

// Fresh reports whether the entry is still fresh at now.
func (e Entry) Fresh(now time.Time) bool { return now.Before(e.FreshUntil) }

// NewEntry builds the cached entry of a report whose BI data (raw JSON) was
// computed at now, in computeTime, and stays fresh for ttl.
func NewEntry(k dashcache.ReportKey, data []byte, now time.Time, computeTime, ttl time.Duration) []byte {
	return newEntry(k, data, now, computeTime, ttl, CompressAbove)
}

// newEntry is NewEntry, compressing a body over compressAbove bytes.
func newEntry(k dashcache.ReportKey, data []byte, now time.Time, computeTime, ttl time.Duration, compressAbove int) []byte {
	var body bytes.Buffer
	body.Grow(len(data) + 128)
	body.WriteString(`{`)
	if k.Report != "" {
		body.WriteString(`"report":`)
		writeJSONString(&body, k.Report)
		body.WriteString(`,`)
	}
	body.WriteString(`"customer":`)
	writeJSONString(&body, k.Customer)
	body.WriteString(`,"from":"` + k.From.String())
	body.WriteString(`","to":"` + k.To.String())
	body.WriteString(`","computed_at":"` + now.UTC().Format(time.RFC3339) + `","data":`)
	body.Write(data)
	body.WriteString("}")

	sum := sha256.Sum256(body.Bytes())
	stored, encoding := body.Bytes(), "identity"
	if body.Len() > compressAbove {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression) // a valid level: no error
		zw.Write(stored)                                       // into memory: no error
		zw.Close()
		stored, encoding = z.Bytes(), "gzip"
	}
	header := entryMagic +
		strconv.FormatInt(now.UnixMilli(), 10) + " " +
		strconv.FormatInt(now.Add(ttl).UnixMilli(), 10) + " " +
		strconv.FormatInt(computeTime.Milliseconds(), 10) + " " +
		strconv.Itoa(len(stored)) + " " + encoding + " " +
		`"` + hex.EncodeToString(sum[:12]) + `"` + "\n"
	return append([]byte(header), stored...)
}

func writeJSONString(b *bytes.Buffer, s string) {
	q, _ := json.Marshal(s) // a string always marshals
	b.Write(q)
}

var errBadEntry = errors.New("store: malformed cache entry")

// ParseEntry parses a cached entry without copying its body. A malformed or
// truncated entry is an error.
func ParseEntry(s string) (Entry, error) {
	header, body, ok := strings.Cut(s, "\n")
	rest, ok2 := strings.CutPrefix(header, entryMagic)
	computed, rest, ok3 := strings.Cut(rest, " ")
	fresh, rest, ok4 := strings.Cut(rest, " ")
	took, rest, ok5 := strings.Cut(rest, " ")
	size, rest, ok6 := strings.Cut(rest, " ")
	encoding, etag, ok7 := strings.Cut(rest, " ")
	if !ok || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 || len(etag) < 2 || etag[0] != '"' || etag[len(etag)-1] != '"' ||
		(encoding != "identity" && encoding != "gzip") {
		return Entry{}, errBadEntry
	}
	c, err1 := strconv.ParseInt(computed, 10, 64)
	f, err2 := strconv.ParseInt(fresh, 10, 64)
	d, err3 := strconv.ParseInt(took, 10, 64)
	n, err4 := strconv.Atoi(size)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || n != len(body) {
		return Entry{}, errBadEntry
	}
	e := Entry{
		ComputedAt:  time.UnixMilli(c),
		FreshUntil:  time.UnixMilli(f),
		ComputeTime: time.Duration(d) * time.Millisecond,
		ETag:        etag,
		Gzip:        encoding == "gzip",
		Body:        body,
	}
	if e.Gzip {
		e.GzipETag = etag[:len(etag)-1] + `-gzip"`
	}
	return e, nil
}
