package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sdspawner/sdspawner/internal/policy"
)

// BenchmarkServeStatus measures the API handler's own cost of one status request:
// the caller check, routing, query parsing and the JSON response, without the socket
// and with a backend that returns at once.
func BenchmarkServeStatus(b *testing.B) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	cfg := policy.Default()
	cfg.Callers.UIDs = []uint32{1000}
	server := NewServer(&cfg, &fakeBackend{}, internalKind, "test")
	ctx := context.WithValue(context.Background(), callerKey{}, policy.Caller{PID: 1, UID: 1000, GID: 1000})
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/servers/status?user=alice&server=", nil)
	b.ReportAllocs()
	for b.Loop() {
		recorder := httptest.NewRecorder()
		server.ServeHTTP(recorder, req)
		if recorder.Code != http.StatusOK {
			b.Fatalf("status request: HTTP %d: %s", recorder.Code, recorder.Body)
		}
	}
}
