package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sdspawner/sdspawner/internal/api"
)

func TestPrintServers(t *testing.T) {
	mem, limit, tasks, ooms := uint64(300<<20), uint64(1<<30), uint64(9), uint64(2)
	cpu, percent, uptime, quota := 754.0, 3.14, 7500.0, 0.5
	exit := int32(1)
	servers := []api.ServerInfo{
		{
			Status:      api.Status{User: "alice", Unit: "jupyter-alice.service", ActiveState: "active", SubState: "running"},
			MemoryBytes: &mem, MemoryLimitBytes: &limit, CPUSeconds: &cpu, CPUPercent: &percent,
			CPULimit: &quota, Tasks: &tasks, OOMKills: &ooms, UptimeSeconds: &uptime,
		},
		{Status: api.Status{User: "bob", Server: "gpu", Unit: "jupyter-bob-gpu.service", ActiveState: "failed", ExitStatus: &exit,
			Failure: "The server's process exited with status 1. Last lines of its log:\nModuleNotFoundError: No module named 'x'"}},
	}
	var out bytes.Buffer
	if err := printServers(&out, servers); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"alice  -       running",
		"2h05m", "300M / 1G", "3.1", "12m34s", "jupyter-alice.service",
		"bob    gpu     failed (exit 1)",
		"bob/gpu: The server's process exited with status 1",
		"No module named 'x'",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("ps output lacks %q:\n%s", want, text)
		}
	}
	out.Reset()
	long := []api.ServerInfo{{Status: api.Status{User: strings.Repeat("z", 230), Unit: "u.service", ActiveState: "active", SubState: "running"}}}
	if err := printServers(&out, long); err != nil {
		t.Fatal(err)
	}
	if header := strings.SplitN(out.String(), "\n", 2)[0]; len(header) > 150 || !strings.Contains(out.String(), strings.Repeat("z", 31)+"…") {
		t.Errorf("ps with a long name:\n%s", out.String())
	}
	out.Reset()
	if err := printServers(&out, nil); err != nil || !strings.Contains(out.String(), "(no servers)") {
		t.Errorf("empty ps = %q, %v", out.String(), err)
	}
}

func TestSizeText(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1536: "1.5K", 64 << 20: "64M", 3 << 30: "3G"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
}
