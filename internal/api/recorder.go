package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// recorder remembers the result of a response for the observer.
type recorder struct {
	http.ResponseWriter
	// result is "ok", or the error code that writeError wrote.
	result string
}

// Unwrap lets http.ResponseController reach the connection's writer, for flushing
// and deadlines of streamed logs.
func (r *recorder) Unwrap() http.ResponseWriter {
	return r.ResponseWriter
}

// newRequestID returns a random id for one request, short enough to read in a log.
func newRequestID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "unknown"
	}
	return hex.EncodeToString(b[:])
}

// actionName names an endpoint for metrics: the path's last element, such as "start",
// or "other" for a path that is not an endpoint, so that a caller cannot make up
// label values.
func actionName(path string) string {
	if _, ok := routes[path]; !ok {
		return "other"
	}
	return path[strings.LastIndexByte(path, '/')+1:]
}
