package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sdspawner/sdspawner/internal/api"
)

type fakeLister []api.ServerInfo

func (f fakeLister) List(context.Context) ([]api.ServerInfo, error) { return f, nil }

func ptr[T any](v T) *T { return &v }

func servers() fakeLister {
	return fakeLister{
		{
			Status:      api.Status{User: "alice", Unit: "jupyter-alice.service", ActiveState: "active"},
			MemoryBytes: ptr(uint64(300 << 20)), MemoryLimitBytes: ptr(uint64(1 << 30)),
			CPUSeconds: ptr(12.5), CPULimit: ptr(0.5), Tasks: ptr(uint64(9)), OOMKills: ptr(uint64(2)),
			StartedAt: "2026-12-04T10:00:00Z",
		},
		// A container without delegated controllers: no usage, still listed.
		{Status: api.Status{User: "bob", Server: "gpu", Unit: "jupyter-bob-gpu.service", ActiveState: "failed"}},
	}
}

func TestServerMetrics(t *testing.T) {
	m := New(servers())
	expected := `
# HELP sdspawner_server_memory_bytes Memory the server's cgroup uses, page cache included.
# TYPE sdspawner_server_memory_bytes gauge
sdspawner_server_memory_bytes{server="",unit="jupyter-alice.service",user="alice"} 3.145728e+08
# HELP sdspawner_server_oom_kills_total Processes in the server's cgroup that the kernel killed for memory, from the cgroup's own counter.
# TYPE sdspawner_server_oom_kills_total counter
sdspawner_server_oom_kills_total{server="",unit="jupyter-alice.service",user="alice"} 2
# HELP sdspawner_server_state 1 for the server's current systemd state (active_state label).
# TYPE sdspawner_server_state gauge
sdspawner_server_state{active_state="active",server="",unit="jupyter-alice.service",user="alice"} 1
sdspawner_server_state{active_state="failed",server="gpu",unit="jupyter-bob-gpu.service",user="bob"} 1
# HELP sdspawner_servers_tracked Servers the daemon knows, running or ended but not yet stopped by the hub.
# TYPE sdspawner_servers_tracked gauge
sdspawner_servers_tracked 2
`
	err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(expected),
		"sdspawner_server_memory_bytes", "sdspawner_server_oom_kills_total", "sdspawner_server_state", "sdspawner_servers_tracked")
	if err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(m.Registry()); err != nil || len(problems) > 0 {
		t.Errorf("metric naming problems: %v %v", problems, err)
	}
}

func TestRequestMetrics(t *testing.T) {
	m := New(fakeLister{})
	m.ObserveRequest("start", "ok", 30*time.Millisecond)
	m.ObserveRequest("start", "forbidden", time.Millisecond)
	m.ObserveRequest("status", "ok", time.Millisecond)
	m.OOMKills("alice", "", 2)
	if got := testutil.ToFloat64(m.requests.WithLabelValues("start", "forbidden")); got != 1 {
		t.Errorf("forbidden starts = %v", got)
	}
	if got := testutil.CollectAndCount(m.starts); got != 1 {
		t.Errorf("start histogram series = %d", got)
	}
	if got := testutil.ToFloat64(m.ooms.WithLabelValues("alice", "")); got != 2 {
		t.Errorf("oom kills = %v", got)
	}
}

// The listener serves the text format on /metrics, and only there.
func TestServe(t *testing.T) {
	m := New(servers())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	listener.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, address) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + address + "/metrics"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `sdspawner_server_cpu_seconds_total{server="",unit="jupyter-alice.service",user="alice"} 12.5`) {
		t.Errorf("metrics body lacks alice's CPU time:\n%s", body)
	}
	if resp, err := http.Get("http://" + address + "/"); err == nil {
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET / = %d, want 404", resp.StatusCode)
		}
		resp.Body.Close()
	}
}

func TestServeBadAddress(t *testing.T) {
	err := New(fakeLister{}).Serve(context.Background(), "256.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "256.0.0.1:1") || !strings.Contains(err.Error(), "metrics.listen") {
		t.Errorf("Serve(bad) = %v, want an error naming the address and the setting", err)
	}
}
