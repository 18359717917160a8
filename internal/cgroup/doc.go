// Package cgroup reads the resource usage of a unit from its cgroup files, in both the
// unified (v2) and the legacy (v1) layouts, so that `sdspawner ps` and the metrics show
// what the kernel accounts, not what systemd was asked for.
package cgroup
