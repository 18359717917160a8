package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestRequestIDReachesRecords(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(contextHandler{slog.NewTextHandler(&out, nil)}).With("component", "api")
	ctx := WithRequestID(context.Background(), "r-42")
	logger.InfoContext(ctx, "server started", "user", "alice")
	logger.Info("no request")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "request_id=r-42") || !strings.Contains(lines[0], "component=api") {
		t.Fatalf("log = %q, want request_id on the first record", out.String())
	}
	if strings.Contains(lines[1], "request_id") {
		t.Errorf("record without a request has a request id: %q", lines[1])
	}
}
