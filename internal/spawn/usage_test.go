package spawn

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sdspawner/sdspawner/internal/cgroup"
)

// countingMetrics records the OOM kills the service reports.
type countingMetrics struct {
	mu    sync.Mutex
	kills map[string]uint64
}

func (m *countingMetrics) OOMKills(user, server string, kills uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kills[user+"/"+server] += kills
}

func u64(v uint64) *uint64 { return &v }

func TestListReportsUsageAndLimits(t *testing.T) {
	s, sd, _ := newTestService(t)
	req := startRequest("alice")
	req.MemLimit = ptr(int64(1 << 30))
	req.CPULimit = ptr(0.5)
	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sd.mu.Lock()
	u := sd.units[st.Unit]
	u.ControlGroup = "/system.slice/" + st.Unit
	u.MemoryMax = 1 << 30
	u.CPUQuotaPerSecUSec = 500000
	sd.mu.Unlock()
	s.setStarted(key{user: "alice"}, st.Unit, time.Now().Add(-time.Minute))
	if _, err := s.refresh(context.Background(), key{user: "alice"}, st.Unit); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	usage := cgroup.Usage{MemoryBytes: u64(300 << 20), CPUUsec: u64(2_000_000), Tasks: u64(5), OOMKills: u64(0)}
	var readPath string
	s.readUsage = func(path string) (cgroup.Usage, error) {
		mu.Lock()
		defer mu.Unlock()
		readPath = path
		return usage, nil
	}
	metrics := &countingMetrics{kills: map[string]uint64{}}
	s.metrics = metrics

	// The first sample has no earlier one, so no CPU percentage yet.
	infos, err := s.List(context.Background())
	if err != nil || len(infos) != 1 {
		t.Fatalf("List = %+v, %v", infos, err)
	}
	info := infos[0]
	if readPath != "/system.slice/"+st.Unit {
		t.Errorf("read usage of %q", readPath)
	}
	if *info.MemoryBytes != 300<<20 || *info.MemoryLimitBytes != 1<<30 || *info.CPULimit != 0.5 || *info.CPUSeconds != 2 || *info.Tasks != 5 || *info.OOMKills != 0 {
		t.Errorf("info = %+v", info)
	}
	if info.CPUPercent != nil {
		t.Errorf("CPU percent without an earlier sample = %v", *info.CPUPercent)
	}
	if info.UptimeSeconds == nil || *info.UptimeSeconds < 59 || info.StartedAt == "" {
		t.Errorf("uptime = %v, started at %q", info.UptimeSeconds, info.StartedAt)
	}

	// A sample from 2 s ago with 1 s less CPU time: 50 % of a core since then. The
	// OOM kill counter went up by 2, which is logged and counted once.
	s.mu.Lock()
	e := s.servers[key{user: "alice"}]
	e.last = &sample{at: time.Now().Add(-2 * time.Second), cpuUsec: u64(1_000_000)}
	s.servers[key{user: "alice"}] = e
	s.mu.Unlock()
	mu.Lock()
	usage.OOMKills = u64(2)
	mu.Unlock()
	infos, _ = s.List(context.Background())
	if p := infos[0].CPUPercent; p == nil || *p < 45 || *p > 51 {
		t.Errorf("CPU percent = %v, want about 50", p)
	}
	s.sampleAll()
	if metrics.kills["alice/"] != 2 {
		t.Errorf("OOM kills reported = %v, want 2 once", metrics.kills)
	}
}

// In a container without delegated controllers, usage is unknown but the server is
// still listed with its limits.
func TestListWithoutCounters(t *testing.T) {
	s, _, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(context.Background())
	if err != nil || len(infos) != 1 || infos[0].MemoryBytes != nil || infos[0].ActiveState != "active" {
		t.Fatalf("List = %+v, %v", infos, err)
	}
}
