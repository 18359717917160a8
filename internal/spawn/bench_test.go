package spawn

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

func BenchmarkPlanStart(b *testing.B) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s, _, _ := newTestService(b)
	req := startRequest("alice")
	req.MemLimit = ptr(int64(2 << 30))
	req.CPULimit = ptr(1.0)
	req.ExtraPaths = []string{"/opt/conda/bin"}
	req.UnitExtraProperties = map[string]any{"CPUWeight": "100", "ReadOnlyPaths": []any{"/srv/data"}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.planStart(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusCached measures the daemon's own cost of one status request with
// 1,000 servers known, which systemd's events keep current, so no D-Bus call is made.
func BenchmarkStatusCached(b *testing.B) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s, sd, _ := newTestService(b)
	for i := range 1000 {
		unit := fmt.Sprintf("jupyter-user%d-singleuser.service", i)
		s.remember(key{user: fmt.Sprintf("user%d", i)}, entry{unit: unit, acct: testAccounts["alice"]})
		s.cacheState(key{user: fmt.Sprintf("user%d", i)}, sdState(unit))
	}
	before := sd.stateCalls
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Status(ctx, "user500", ""); err != nil {
			b.Fatal(err)
		}
	}
	if sd.stateCalls != before {
		b.Fatalf("status made %d State calls, want none", sd.stateCalls-before)
	}
}

// BenchmarkHandleEventMatchingCache measures the daemon's cost of one systemd event that
// repeats the cached state of one of 1,000 servers, the most frequent event, which needs
// no D-Bus call.
func BenchmarkHandleEventMatchingCache(b *testing.B) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s, sd, _ := newTestService(b)
	for i := range 1000 {
		unit := fmt.Sprintf("jupyter-user%d-singleuser.service", i)
		s.remember(key{user: fmt.Sprintf("user%d", i)}, entry{unit: unit, acct: testAccounts["alice"]})
		s.cacheState(key{user: fmt.Sprintf("user%d", i)}, sdState(unit))
	}
	event := stateEvent("jupyter-user500-singleuser.service", "active", "running")
	before := sd.stateCalls
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.HandleEvent(ctx, event)
	}
	if sd.stateCalls != before {
		b.Fatalf("events made %d State calls, want none", sd.stateCalls-before)
	}
}
