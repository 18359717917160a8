package cgroup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func value(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestReadUnified(t *testing.T) {
	root := t.TempDir()
	unit := "/system.slice/jupyter-alice.service"
	writeFiles(t, root+unit, map[string]string{
		"memory.current": "1048576\n",
		"cpu.stat":       "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
		"pids.current":   "7\n",
		"memory.events":  "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n",
	})
	u, err := Layout{Unified: root, UnifiedControllers: []string{"cpu", "memory", "pids"}}.Read(unit)
	if err != nil {
		t.Fatal(err)
	}
	if value(u.MemoryBytes) != uint64(1048576) || value(u.CPUUsec) != uint64(2500000) || value(u.Tasks) != uint64(7) || value(u.OOMKills) != uint64(2) {
		t.Errorf("usage = mem %v cpu %v tasks %v oom %v", value(u.MemoryBytes), value(u.CPUUsec), value(u.Tasks), value(u.OOMKills))
	}
}

func TestReadLegacy(t *testing.T) {
	root := t.TempDir()
	unit := "/system.slice/jupyter-bob.service"
	writeFiles(t, root, map[string]string{
		"memory" + unit + "/memory.usage_in_bytes": "4096\n",
		"memory" + unit + "/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
		"cpuacct" + unit + "/cpuacct.usage":        "1500000000\n",
		"pids" + unit + "/pids.current":            "3\n",
	})
	layout := Layout{Unified: root + "/unified", V1: map[string]string{
		"memory": root + "/memory", "cpuacct": root + "/cpuacct", "pids": root + "/pids",
	}}
	u, err := layout.Read(unit)
	if err != nil {
		t.Fatal(err)
	}
	if value(u.MemoryBytes) != uint64(4096) || value(u.CPUUsec) != uint64(1500000) || value(u.Tasks) != uint64(3) || value(u.OOMKills) != uint64(3) {
		t.Errorf("usage = mem %v cpu %v tasks %v oom %v", value(u.MemoryBytes), value(u.CPUUsec), value(u.Tasks), value(u.OOMKills))
	}
}

// A container whose controllers are not delegated has no files for the unit: every
// counter is unknown, which is not an error.
func TestReadMissingCounters(t *testing.T) {
	u, err := Layout{Unified: t.TempDir(), UnifiedControllers: []string{"memory"}}.Read("/system.slice/x.service")
	if err != nil {
		t.Fatal(err)
	}
	if u.MemoryBytes != nil || u.CPUUsec != nil || u.Tasks != nil || u.OOMKills != nil {
		t.Errorf("usage of a missing cgroup = %+v, want all nil", u)
	}
}

func TestReadRejectsEscapingPath(t *testing.T) {
	for _, path := range []string{"relative/x.service", "/system.slice/../../etc", "/a/.."} {
		if _, err := (Layout{Unified: "/sys/fs/cgroup"}).Read(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Read(%q) error = %v, want one naming the path", path, err)
		}
	}
}

func TestParseMountInfo(t *testing.T) {
	text := `25 30 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
40 30 0:40 / /mnt/with\040space rw - ext4 /dev/sda1 rw
`
	layout, err := ParseMountInfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if layout.Unified != "/sys/fs/cgroup/unified" {
		t.Errorf("Unified = %q", layout.Unified)
	}
	want := map[string]string{"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
	for controller, mount := range want {
		if layout.V1[controller] != mount {
			t.Errorf("V1[%s] = %q, want %q", controller, layout.V1[controller], mount)
		}
	}
	if got := unescapeMount(`/mnt/with\040space`); got != "/mnt/with space" {
		t.Errorf("unescapeMount = %q", got)
	}
}
