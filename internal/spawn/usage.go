package spawn

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sort"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/cgroup"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// sampleInterval is how often the daemon reads every server's usage, to log OOM kills
// soon after they happen and to know each server's recent CPU use.
const sampleInterval = 10 * time.Second

// minCPUWindow is the shortest time between two samples that a CPU percentage is
// computed over; shorter windows give noise.
const minCPUWindow = time.Second

// sample is one reading of a unit's usage counters.
type sample struct {
	at       time.Time
	cpuUsec  *uint64
	oomKills *uint64
}

// limits are a unit's memory and CPU limits; 0 or math.MaxUint64 means none.
type limits struct {
	memoryMax          uint64
	cpuQuotaPerSecUSec uint64
}

// limitsOf returns the limits that the unit properties props set.
func limitsOf(props []systemd.Property) limits {
	var l limits
	for _, p := range props {
		value, ok := p.Value.Value().(uint64)
		if !ok {
			continue
		}
		switch p.Name {
		case "MemoryMax":
			l.memoryMax = value
		case "CPUQuotaPerSecUSec":
			l.cpuQuotaPerSecUSec = value
		}
	}
	return l
}

// Metrics receives what the daemon notices while it samples usage; the metrics
// package implements it.
type Metrics interface {
	// OOMKills counts kills that the kernel made in user's server for memory.
	OOMKills(user, server string, kills uint64)
}

type noMetrics struct{}

func (noMetrics) OOMKills(string, string, uint64) {}

func noUsage(string) (cgroup.Usage, error) {
	return cgroup.Usage{}, errors.New("usage is not read in this configuration")
}

// Run makes the service read usage from the cgroup hierarchies in layout, report to
// metrics, and use ctx for work that outlives a request. It samples every server's
// usage until ctx ends.
func (s *Service) Run(ctx context.Context, layout cgroup.Layout, metrics Metrics) {
	s.background = ctx
	s.readUsage = layout.Read
	if metrics != nil {
		s.metrics = metrics
	}
	go func() {
		ticker := time.NewTicker(sampleInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				s.sampleAll()
			case <-ctx.Done():
				return
			}
		}
	}()
}

// sampleAll reads the usage of every running server.
func (s *Service) sampleAll() {
	s.mu.Lock()
	keys := make([]key, 0, len(s.servers))
	for k := range s.servers {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for _, k := range keys {
		s.sampleServer(s.background, k)
	}
}

// sampleServer reads the usage of k's unit, stores it as the newest sample, logs new
// OOM kills, and returns the usage with the previous sample.
func (s *Service) sampleServer(ctx context.Context, k key) (cgroup.Usage, *sample, bool) {
	e, ok := s.lookup(k)
	if !ok || e.state == nil || ended(*e.state) {
		return cgroup.Usage{}, nil, false
	}
	path := s.cgroupOf(ctx, k, e.unit)
	if path == "" {
		return cgroup.Usage{}, nil, false
	}
	usage, err := s.readUsage(path)
	if err != nil {
		return cgroup.Usage{}, nil, false
	}
	now := sample{at: time.Now(), cpuUsec: usage.CPUUsec, oomKills: usage.OOMKills}

	s.mu.Lock()
	current, ok := s.servers[k]
	if !ok || current.unit != e.unit {
		s.mu.Unlock()
		return usage, nil, true
	}
	before := current.last
	var base *sample
	if before == nil || now.at.Sub(before.at) >= minCPUWindow {
		base = before
		current.prev, current.last = before, &now
	} else {
		// Two reads in quick succession: keep the older sample as the base of the CPU
		// percentage, which would be noise over a few milliseconds.
		base = current.prev
	}
	var kills uint64
	if now.oomKills != nil {
		if current.oomSeen != nil && *now.oomKills > *current.oomSeen {
			kills = *now.oomKills - *current.oomSeen
		}
		seen := *now.oomKills
		current.oomSeen = &seen
	}
	s.servers[k] = current
	s.mu.Unlock()

	if kills > 0 {
		slog.Warn("the kernel killed processes of a server for using more memory than its limit",
			"user", k.user, "server", k.server, "unit", e.unit, "unix_user", e.acct.Name,
			"oom_kills", kills, "oom_kills_total", *now.oomKills, "memory_max", e.state.MemoryMax)
		s.metrics.OOMKills(k.user, k.server, kills)
	}
	return usage, base, true
}

// List returns every server in the daemon's index, sorted by user and server name, with
// its usage read now from its cgroup.
func (s *Service) List(ctx context.Context) ([]api.ServerInfo, error) {
	s.mu.Lock()
	keys := make([]key, 0, len(s.servers))
	for k := range s.servers {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].user != keys[j].user {
			return keys[i].user < keys[j].user
		}
		return keys[i].server < keys[j].server
	})
	infos := make([]api.ServerInfo, 0, len(keys))
	now := time.Now()
	for _, k := range keys {
		st, err := s.status(ctx, k)
		if err != nil {
			return nil, err
		}
		if st.Unit == "" {
			continue
		}
		info := api.ServerInfo{Status: st}
		e, ok := s.lookup(k)
		if !ok || e.state == nil {
			infos = append(infos, info)
			continue
		}
		state := *e.state
		if limit := e.limits.memoryMax; limit != 0 && limit != math.MaxUint64 && !ended(state) {
			info.MemoryLimitBytes = &limit
		}
		if quota := e.limits.cpuQuotaPerSecUSec; quota != 0 && quota != math.MaxUint64 && !ended(state) {
			cores := float64(quota) / 1e6
			info.CPULimit = &cores
		}
		if started := e.startedAt; !started.IsZero() && !ended(state) {
			info.StartedAt = started.UTC().Format(time.RFC3339)
			uptime := now.Sub(started).Seconds()
			info.UptimeSeconds = &uptime
		}
		if usage, base, ok := s.sampleServer(ctx, k); ok {
			info.MemoryBytes = usage.MemoryBytes
			info.Tasks = usage.Tasks
			info.OOMKills = usage.OOMKills
			if usage.CPUUsec != nil {
				seconds := float64(*usage.CPUUsec) / 1e6
				info.CPUSeconds = &seconds
				if base != nil && base.cpuUsec != nil && *usage.CPUUsec >= *base.cpuUsec {
					window := now.Sub(base.at).Seconds()
					if window > 0 {
						percent := float64(*usage.CPUUsec-*base.cpuUsec) / 1e6 / window * 100
						info.CPUPercent = &percent
					}
				}
			}
		}
		infos = append(infos, info)
	}
	return append(infos, s.failedStarts()...), nil
}

// failedStarts lists the servers that the daemon no longer tracks and whose latest
// start failed, with the reason. The hub stops a server whose start failed, which
// removes it from the index, but the admin still needs the reason.
func (s *Service) failedStarts() []api.ServerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var infos []api.ServerInfo
	for k, log := range s.progress {
		if _, tracked := s.servers[k]; tracked || len(log.events) == 0 {
			continue
		}
		last := log.events[len(log.events)-1]
		if last.Phase != api.PhaseFailed && last.Phase != api.PhaseTimeout {
			continue
		}
		infos = append(infos, api.ServerInfo{Status: api.Status{
			User: k.user, Server: k.server, Unit: log.unit, ActiveState: "failed", Failure: last.Message,
		}})
	}
	sort.Slice(infos, func(i, j int) bool {
		if infos[i].User != infos[j].User {
			return infos[i].User < infos[j].User
		}
		return infos[i].Server < infos[j].Server
	})
	return infos
}
