package spawn

import (
	"context"
	"encoding/hex"
	"log/slog"
	"time"
)

// timestamp turns systemd's microseconds since the Unix epoch into a time, zero for 0.
func timestamp(usec uint64) time.Time {
	if usec == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(usec))
}

// setStarted records when k's run of unit became active.
func (s *Service) setStarted(k key, unit string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.servers[k]; ok && e.unit == unit {
		e.startedAt = at
		s.servers[k] = e
	}
}

// cgroupOf returns the cgroup of k's run of unit, reading it from systemd the first
// time. It returns "" when the unit has none or the read fails.
func (s *Service) cgroupOf(ctx context.Context, k key, unit string) string {
	if e, ok := s.lookup(k); !ok || e.unit != unit || e.cgroup != "" {
		return e.cgroup
	}
	value, err := s.sd.UnitProperty(ctx, unit, "Service", "ControlGroup")
	if err != nil {
		slog.Debug("reading a unit's cgroup failed", "unit", unit, "err", err)
		return ""
	}
	path, _ := value.(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.servers[k]; ok && e.unit == unit {
		e.cgroup = path
		s.servers[k] = e
	}
	return path
}

// invocationOf returns the invocation id of k's run of unit, which selects that run's
// journal lines, reading it from systemd the first time. Call it before a failed unit
// is reset, because a reset unit has no id left to read. It returns "" when the read
// fails, and the journal is then read without the filter.
func (s *Service) invocationOf(ctx context.Context, k key, unit string) string {
	if e, ok := s.lookup(k); !ok || e.unit != unit || e.invocation != "" {
		return e.invocation
	}
	value, err := s.sd.UnitProperty(ctx, unit, "Unit", "InvocationID")
	if err != nil {
		slog.Debug("reading a unit's invocation id failed", "unit", unit, "err", err)
		return ""
	}
	id, _ := value.([]byte)
	if len(id) == 0 {
		return ""
	}
	invocation := hex.EncodeToString(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.servers[k]; ok && e.unit == unit {
		e.invocation = invocation
		s.servers[k] = e
	}
	return invocation
}
