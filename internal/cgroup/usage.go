package cgroup

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is the resource use that the kernel has accounted to one cgroup. A nil field is
// a counter that this machine's cgroup layout does not provide, for example memory in a
// container whose memory controller is not delegated.
type Usage struct {
	// MemoryBytes is the memory in use, page cache included, as the limit counts it.
	MemoryBytes *uint64
	// CPUUsec is the CPU time used since the cgroup was created, in microseconds.
	CPUUsec *uint64
	// Tasks is the number of processes and threads.
	Tasks *uint64
	// OOMKills counts the processes the kernel killed because the cgroup reached its
	// memory limit.
	OOMKills *uint64
}

// Read returns the usage of the cgroup at path, as systemd's ControlGroup property
// names it (for example "/system.slice/jupyter-alice.service"). It fails only when path
// is not absolute and clean. Counters that cannot be read are left nil.
func (l Layout) Read(path string) (Usage, error) {
	if !strings.HasPrefix(path, "/") || filepath.Clean(path) != path {
		return Usage{}, fmt.Errorf("cgroup path %q is not absolute and clean", path)
	}
	var u Usage
	if l.Unified != "" && len(l.UnifiedControllers) > 0 {
		dir := filepath.Join(l.Unified, path)
		u.MemoryBytes = readUint(filepath.Join(dir, "memory.current"))
		u.CPUUsec = readKey(filepath.Join(dir, "cpu.stat"), "usage_usec")
		u.Tasks = readUint(filepath.Join(dir, "pids.current"))
		u.OOMKills = readKey(filepath.Join(dir, "memory.events"), "oom_kill")
	}
	if mount, ok := l.V1["memory"]; ok && u.MemoryBytes == nil {
		dir := filepath.Join(mount, path)
		u.MemoryBytes = readUint(filepath.Join(dir, "memory.usage_in_bytes"))
		u.OOMKills = readKey(filepath.Join(dir, "memory.oom_control"), "oom_kill")
	}
	if mount, ok := l.V1["cpuacct"]; ok && u.CPUUsec == nil {
		if ns := readUint(filepath.Join(mount, path, "cpuacct.usage")); ns != nil {
			usec := *ns / 1000
			u.CPUUsec = &usec
		}
	}
	if mount, ok := l.V1["pids"]; ok && u.Tasks == nil {
		u.Tasks = readUint(filepath.Join(mount, path, "pids.current"))
	}
	return u, nil
}

// readUint reads a file that holds one unsigned number, or returns nil.
func readUint(path string) *uint64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	value, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	if err != nil {
		return nil
	}
	return &value
}

// readKey reads the value of key from a flat keyed file such as cpu.stat ("key value"
// per line), or returns nil.
func readKey(path, key string) *uint64 {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		name, value, ok := strings.Cut(scanner.Text(), " ")
		if !ok || name != key {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return nil
		}
		return &n
	}
	return nil
}
