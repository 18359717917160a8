package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Layout is the set of mount points of the cgroup hierarchies that contain usage counters.
type Layout struct {
	// Unified is the mount point of the cgroup2 hierarchy, "" if none is mounted.
	Unified string
	// UnifiedControllers are the controllers the cgroup2 hierarchy has, from its
	// cgroup.controllers file; on a hybrid host it has none.
	UnifiedControllers []string
	// V1 maps each v1 controller ("memory", "cpuacct", "pids") to its mount point.
	V1 map[string]string
}

// DetectLayout reads this process's mount table to find the cgroup hierarchies.
func DetectLayout() (Layout, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return Layout{}, fmt.Errorf("read cgroup mounts: %w", err)
	}
	defer f.Close()
	layout, err := ParseMountInfo(f)
	if err != nil {
		return Layout{}, err
	}
	if layout.Unified != "" {
		data, err := os.ReadFile(layout.Unified + "/cgroup.controllers")
		if err == nil {
			layout.UnifiedControllers = strings.Fields(string(data))
		}
	}
	return layout, nil
}

// ParseMountInfo finds the cgroup mounts in the text of /proc/<pid>/mountinfo.
func ParseMountInfo(r io.Reader) (Layout, error) {
	layout := Layout{V1: map[string]string{}}
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		// Fields: id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(scanner.Text())
		sep := -1
		for i, field := range fields {
			if field == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(fields) {
			continue
		}
		mountPoint := unescapeMount(fields[4])
		switch fields[sep+1] {
		case "cgroup2":
			if layout.Unified == "" {
				layout.Unified = mountPoint
			}
		case "cgroup":
			for _, option := range strings.Split(fields[sep+3], ",") {
				switch option {
				case "memory", "cpuacct", "pids", "cpu":
					if _, seen := layout.V1[option]; !seen {
						layout.V1[option] = mountPoint
					}
				}
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return Layout{}, fmt.Errorf("read cgroup mounts: %w", err)
	}
	return layout, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo paths.
func unescapeMount(path string) string {
	if !strings.Contains(path, `\`) {
		return path
	}
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '\\' && i+3 < len(path) {
			var c byte
			if _, err := fmt.Sscanf(path[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(path[i])
	}
	return b.String()
}
