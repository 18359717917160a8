// Package systemd talks to systemd's manager over D-Bus: it starts, stops and inspects
// the transient services that run users' servers.
package systemd

import (
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Property is one unit property sent to StartTransientUnit.
type Property = sddbus.Property

func prop(name string, value any) Property {
	return Property{Name: name, Value: dbus.MakeVariant(value)}
}

// PropExecStart runs argv as the main process; a non-zero exit marks the unit failed.
func PropExecStart(argv []string) Property { return sddbus.PropExecStart(argv, true) }

// PropType sets the service type, such as "exec".
func PropType(serviceType string) Property { return sddbus.PropType(serviceType) }

// PropDescription sets the human-readable description shown by systemctl.
func PropDescription(text string) Property { return sddbus.PropDescription(text) }

// PropSlice puts the unit into a slice.
func PropSlice(slice string) Property { return sddbus.PropSlice(slice) }

// PropUser sets User=.
func PropUser(name string) Property { return prop("User", name) }

// PropGroup sets Group=.
func PropGroup(name string) Property { return prop("Group", name) }

// PropWorkingDirectory sets WorkingDirectory=.
func PropWorkingDirectory(path string) Property { return prop("WorkingDirectory", path) }

// environmentFile is the D-Bus form (sb) of one EnvironmentFile= entry.
type environmentFile struct {
	Path     string
	Optional bool
}

// PropEnvironmentFile sets EnvironmentFile= to one file that must exist.
func PropEnvironmentFile(path string) Property {
	return prop("EnvironmentFiles", []environmentFile{{Path: path}})
}

// PropMemoryAccounting sets MemoryAccounting=.
func PropMemoryAccounting(on bool) Property { return prop("MemoryAccounting", on) }

// PropMemoryMax sets MemoryMax= in bytes.
func PropMemoryMax(bytes uint64) Property { return prop("MemoryMax", bytes) }

// PropCPUQuotaPerSecUSec sets CPUQuota= as microseconds of CPU time per second of wall
// time, so 500000 is 50%.
func PropCPUQuotaPerSecUSec(usec uint64) Property { return prop("CPUQuotaPerSecUSec", usec) }

// PropCPUWeight sets CPUWeight=, 1 to 10000, where 100 is systemd's default weight.
func PropCPUWeight(weight uint64) Property { return prop("CPUWeight", weight) }

// PropOOMPolicy sets OOMPolicy=: "continue", "stop" or "kill".
func PropOOMPolicy(policy string) Property { return prop("OOMPolicy", policy) }

// PropPrivateTmp sets PrivateTmp=.
func PropPrivateTmp(on bool) Property { return prop("PrivateTmp", on) }

// PropPrivateDevices sets PrivateDevices=.
func PropPrivateDevices(on bool) Property { return prop("PrivateDevices", on) }

// PropNoNewPrivileges sets NoNewPrivileges=.
func PropNoNewPrivileges(on bool) Property { return prop("NoNewPrivileges", on) }

// PropRuntimeDirectory sets RuntimeDirectory= to directories below /run, created for
// the unit's user when it starts and removed when it stops.
func PropRuntimeDirectory(names ...string) Property { return prop("RuntimeDirectory", names) }

// PropRuntimeDirectoryMode sets RuntimeDirectoryMode=.
func PropRuntimeDirectoryMode(mode uint32) Property { return prop("RuntimeDirectoryMode", mode) }

// PropLogExtraFields adds journal fields, each "NAME=value", to every line the unit
// logs. D-Bus carries them as byte arrays (aay).
func PropLogExtraFields(fields ...string) Property {
	values := make([][]byte, len(fields))
	for i, field := range fields {
		values[i] = []byte(field)
	}
	return prop("LogExtraFields", values)
}

// PropTimeoutStopUSec sets TimeoutStopSec= in microseconds: how long systemd waits after
// SIGTERM before it sends SIGKILL.
func PropTimeoutStopUSec(usec uint64) Property { return prop("TimeoutStopUSec", usec) }

// ExecCommandEx is the D-Bus form (sasas) of one ExecStartEx= entry.
type ExecCommandEx struct {
	Path  string
	Argv  []string
	Flags []string
}

// PropExecStartEx runs argv as the main process with systemd's "no-env-expand" flag, so
// that an argument such as "$HOME" reaches the process as written instead of being
// replaced by systemd. A non-zero exit marks the unit failed. Needs systemd 243 or later.
func PropExecStartEx(argv []string) Property {
	return prop("ExecStartEx", []ExecCommandEx{{Path: argv[0], Argv: argv, Flags: []string{"no-env-expand"}}})
}

// PropReadOnlyPaths sets ReadOnlyPaths=.
func PropReadOnlyPaths(paths []string) Property { return prop("ReadOnlyPaths", paths) }

// PropReadWritePaths sets ReadWritePaths=.
func PropReadWritePaths(paths []string) Property { return prop("ReadWritePaths", paths) }

// PropDynamicUser sets DynamicUser=: systemd allocates an unprivileged uid for the unit.
func PropDynamicUser(on bool) Property { return prop("DynamicUser", on) }

// PropStateDirectory sets StateDirectory= to directories below /var/lib that belong to
// the unit's user and survive restarts.
func PropStateDirectory(names ...string) Property { return prop("StateDirectory", names) }
