// Package check finds out whether this machine enforces the limits sdspawner sets: the
// systemd version, the cgroup layout and controllers, and a live probe unit whose
// limits are read back from the kernel's cgroup files.
package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sdspawner/sdspawner/internal/systemd"
)

// systemd versions: below minSystemd the daemon cannot work (ExecStartEx and OOMPolicy
// need 243); below recommendedSystemd some limits behave differently.
const (
	minSystemd         = 243
	recommendedSystemd = 245
)

// Probe limits: small enough to be harmless, distinct enough to be recognised.
const (
	probeMemoryMax = 64 << 20
	probeCPUQuota  = 500000 // µs of CPU time a second: 50%
)

// Report is the outcome of a check.
type Report struct {
	SystemdVersion string   `json:"systemd_version"`
	CgroupMode     string   `json:"cgroup_mode"`
	Controllers    []string `json:"controllers"`
	KernelConfig   []string `json:"kernel_config,omitempty"`
	MemoryEnforced bool     `json:"memory_limit_enforced"`
	CPUEnforced    bool     `json:"cpu_limit_enforced"`
	// Enforced is true when both memory and CPU limits reached the kernel.
	Enforced bool `json:"limits_enforced"`
	// OK is true when everything sdspawner needs works here.
	OK       bool     `json:"ok"`
	Problems []string `json:"problems"`
	Notes    []string `json:"notes"`
}

// Run checks this machine through conn and returns the report. It starts one probe unit
// and stops it before returning.
func Run(ctx context.Context, conn *systemd.Conn) (Report, error) {
	r := Report{Problems: []string{}, Notes: []string{}}
	version, err := conn.Version(ctx)
	if err != nil {
		return r, err
	}
	r.SystemdVersion = version
	major := 0
	if digits := strings.FieldsFunc(version, func(c rune) bool { return c < '0' || c > '9' }); len(digits) > 0 {
		major, _ = strconv.Atoi(digits[0])
	}
	switch {
	case major < minSystemd:
		r.Problems = append(r.Problems, fmt.Sprintf("systemd %d is too old: sdspawner needs %d or later for ExecStartEx and OOMPolicy", major, minSystemd))
	case major < recommendedSystemd:
		r.Notes = append(r.Notes, fmt.Sprintf("systemd %d works, but %d or later is recommended", major, recommendedSystemd))
	}

	r.CgroupMode = cgroupMode()
	r.Controllers = controllers(r.CgroupMode)
	r.KernelConfig = kernelConfig()

	if err := r.probe(ctx, conn); err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("the probe unit failed: %v", err))
	}
	r.Enforced = r.MemoryEnforced && r.CPUEnforced
	if !r.MemoryEnforced {
		r.Problems = append(r.Problems, "memory limits are NOT enforced here: the probe unit's MemoryMax did not reach the kernel (no memory controller for services)")
	}
	if !r.CPUEnforced {
		r.Problems = append(r.Problems, "CPU limits are NOT enforced here: the probe unit's CPUQuota did not reach the kernel (no cpu controller or no CPU bandwidth control)")
	}
	r.OK = len(r.Problems) == 0
	return r, nil
}

// cgroupMode returns "v2", "hybrid" or "v1" from the file system types under
// /sys/fs/cgroup.
func cgroupMode() string {
	if fsType("/sys/fs/cgroup") == 0x63677270 { // CGROUP2_SUPER_MAGIC
		return "v2"
	}
	if fsType("/sys/fs/cgroup/unified") == 0x63677270 {
		return "hybrid"
	}
	return "v1"
}

func fsType(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0
	}
	return int64(st.Type)
}

// controllers lists the controllers available to services: on cgroup v2 those in the
// root's cgroup.controllers, on v1 the mounted hierarchies.
func controllers(mode string) []string {
	if mode == "v2" {
		data, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if err != nil {
			return []string{}
		}
		return strings.Fields(string(data))
	}
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return []string{}
	}
	var names []string
	for _, entry := range entries {
		if entry.IsDir() && entry.Name() != "unified" && entry.Name() != "systemd" {
			names = append(names, entry.Name())
		}
	}
	return names
}

// kernelConfig returns the kernel options that limits depend on, where the running
// kernel's config is readable in /boot.
func kernelConfig() []string {
	var release syscall.Utsname
	if syscall.Uname(&release) != nil {
		return nil
	}
	var b strings.Builder
	for _, c := range release.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	data, err := os.ReadFile("/boot/config-" + b.String())
	if err != nil {
		return nil
	}
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		for _, option := range []string{"CONFIG_MEMCG=", "CONFIG_CFS_BANDWIDTH=", "CONFIG_CGROUP_SCHED="} {
			if strings.HasPrefix(line, option) {
				found = append(found, line)
			}
		}
	}
	return found
}

// probe starts a unit with a memory and a CPU limit and reads both back from the
// unit's cgroup files.
func (r *Report) probe(ctx context.Context, conn *systemd.Conn) error {
	unit := fmt.Sprintf("sdspawner-check-%d.service", os.Getpid())
	props := []systemd.Property{
		systemd.PropDescription("sdspawner check: limit probe"),
		systemd.PropType("exec"),
		systemd.PropExecStartEx([]string{"/bin/sleep", "60"}),
		systemd.PropMemoryAccounting(true),
		systemd.PropMemoryMax(probeMemoryMax),
		systemd.PropCPUQuotaPerSecUSec(probeCPUQuota),
		systemd.PropLogExtraFields("SDSPAWNER_CHECK=1"),
	}
	if err := conn.StartTransient(ctx, unit, props); err != nil {
		return err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = conn.Stop(stopCtx, unit)
		_ = conn.ResetFailed(stopCtx, unit)
	}()
	value, err := conn.ServiceProperty(ctx, unit, "ControlGroup")
	if err != nil {
		return err
	}
	cgroup, _ := value.(string)
	r.Notes = append(r.Notes, "probe unit "+unit+" in cgroup "+cgroup)

	if r.CgroupMode == "v2" {
		r.MemoryEnforced = readFile(filepath.Join("/sys/fs/cgroup", cgroup, "memory.max")) == strconv.Itoa(probeMemoryMax)
		quota := strings.Fields(readFile(filepath.Join("/sys/fs/cgroup", cgroup, "cpu.max")))
		r.CPUEnforced = len(quota) == 2 && quota[0] != "max" && ratio(quota[0], quota[1]) == 0.5
		return nil
	}
	r.MemoryEnforced = readFile(filepath.Join("/sys/fs/cgroup/memory", cgroup, "memory.limit_in_bytes")) == strconv.Itoa(probeMemoryMax)
	quota := readFile(filepath.Join("/sys/fs/cgroup/cpu", cgroup, "cpu.cfs_quota_us"))
	period := readFile(filepath.Join("/sys/fs/cgroup/cpu", cgroup, "cpu.cfs_period_us"))
	r.CPUEnforced = quota != "" && quota != "-1" && ratio(quota, period) == 0.5
	return nil
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func ratio(numerator, denominator string) float64 {
	n, err1 := strconv.ParseFloat(numerator, 64)
	d, err2 := strconv.ParseFloat(denominator, 64)
	if err1 != nil || err2 != nil || d == 0 {
		return 0
	}
	return n / d
}
