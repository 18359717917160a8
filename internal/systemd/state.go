package systemd

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// UnitState is the state that systemd reports for one service unit.
type UnitState struct {
	// Name is the unit name.
	Name string
	// LoadState is "loaded", "not-found", and so on; "not-found" means no such unit.
	LoadState string
	// ActiveState is "active", "activating", "deactivating", "inactive" or "failed".
	ActiveState string
	// SubState is the service-specific state, such as "running" or "exited".
	SubState string
	// Result is the service's result, such as "success", "exit-code" or "oom-kill".
	Result string
	// MainPID is the main process id, 0 when there is none.
	MainPID uint32
	// ExecMainCode is the si_code of the main process's end: 1 exited, 2 killed,
	// 3 dumped core, 0 not ended.
	ExecMainCode int32
	// ExecMainStatus is the exit status, or the signal number when killed.
	ExecMainStatus int32
	// User is the User= of the service.
	User string
	// LogExtraFields are the unit's extra journal fields, "NAME=value" each.
	LogExtraFields []string
	// FragmentPath is the unit file, "" for a unit with none (transient units, and
	// slices that systemd makes up when a unit names them).
	FragmentPath string
	// DropInPaths are the unit's drop-in files.
	DropInPaths []string
	// ControlGroup is the unit's cgroup path below the cgroup root, "" when the unit
	// has no processes.
	ControlGroup string
	// InvocationID identifies one run of the unit; journal entries of that run carry
	// it as _SYSTEMD_INVOCATION_ID.
	InvocationID string
	// MemoryMax is the memory limit in bytes; math.MaxUint64 means none.
	MemoryMax uint64
	// CPUQuotaPerSecUSec is the CPU time the unit may use per second of wall time,
	// in microseconds; math.MaxUint64 means no quota.
	CPUQuotaPerSecUSec uint64
	// ActiveEnterTimestamp is when the unit last became active, in microseconds
	// since the Unix epoch; 0 if never.
	ActiveEnterTimestamp uint64
	// Seq orders this state against Events: the Seq of the last reply the read got,
	// on the bus connection that also receives the events. A state with a greater Seq
	// than an event was read after systemd sent that event. 0 means unknown.
	Seq uint64
	// JobID is the id of the job queued for the unit, such as a start that waits for
	// a unit ordered before it, and 0 when there is none.
	JobID uint32
}

// Loaded reports whether systemd has the unit loaded.
func (s UnitState) Loaded() bool {
	return s.LoadState != "" && s.LoadState != "not-found"
}

// Field returns the value of the extra journal field name, and whether it is set.
func (s UnitState) Field(name string) (string, bool) {
	for _, field := range s.LogExtraFields {
		if value, ok := strings.CutPrefix(field, name+"="); ok {
			return value, true
		}
	}
	return "", false
}

// State reads the state of the service unit name. A unit that systemd has not loaded is
// reported with LoadState "not-found". It calls GetUnit first, because reading the
// properties of an unloaded unit's object makes systemd load a placeholder, unload it
// again and send UnitRemoved, which would wake the event handler in a loop.
func (c *Conn) State(ctx context.Context, name string) (UnitState, error) {
	return c.state(ctx, name, "GetUnit")
}

// LoadState reads the state of the unit name after loading it from its unit file, if
// it has one. It suits units that exist without running, such as a slice.
func (c *Conn) LoadState(ctx context.Context, name string) (UnitState, error) {
	return c.state(ctx, name, "LoadUnit")
}

func (c *Conn) state(ctx context.Context, name, method string) (UnitState, error) {
	free, err := c.acquire(ctx)
	if err != nil {
		return UnitState{}, err
	}
	defer free()
	var path dbus.ObjectPath
	err = c.manager().CallWithContext(ctx, "org.freedesktop.systemd1.Manager."+method, 0, name).Store(&path)
	if IsNoSuchUnit(err) {
		return UnitState{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, nil
	}
	if err != nil {
		return UnitState{}, fmt.Errorf("read state of unit %s: %w", name, err)
	}
	var props map[string]dbus.Variant
	err = c.rawConn().Object("org.freedesktop.systemd1", path).
		CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, "").Store(&props)
	if IsNoSuchUnit(err) || DBusErrorName(err) == "org.freedesktop.DBus.Error.UnknownObject" {
		return UnitState{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, nil
	}
	if err != nil {
		return UnitState{}, fmt.Errorf("read state of unit %s: %w", name, err)
	}
	state := UnitState{Name: name}
	stringProp(props, "LoadState", &state.LoadState)
	stringProp(props, "ActiveState", &state.ActiveState)
	stringProp(props, "SubState", &state.SubState)
	stringProp(props, "Result", &state.Result)
	stringProp(props, "User", &state.User)
	stringProp(props, "FragmentPath", &state.FragmentPath)
	if paths, ok := props["DropInPaths"].Value().([]string); ok {
		for _, path := range paths {
			state.DropInPaths = append(state.DropInPaths, strings.Clone(path))
		}
	}
	if v, ok := props["MainPID"].Value().(uint32); ok {
		state.MainPID = v
	}
	if v, ok := props["ExecMainCode"].Value().(int32); ok {
		state.ExecMainCode = v
	}
	if v, ok := props["ExecMainStatus"].Value().(int32); ok {
		state.ExecMainStatus = v
	}
	stringProp(props, "ControlGroup", &state.ControlGroup)
	if id, ok := props["InvocationID"].Value().([]byte); ok && len(id) > 0 {
		state.InvocationID = hex.EncodeToString(id)
	}
	uint64Prop(props, "MemoryMax", &state.MemoryMax)
	uint64Prop(props, "CPUQuotaPerSecUSec", &state.CPUQuotaPerSecUSec)
	uint64Prop(props, "ActiveEnterTimestamp", &state.ActiveEnterTimestamp)
	// Job is a (uo) struct of the job's id and object path. Id 0 means no job.
	if job, ok := props["Job"].Value().([]any); ok && len(job) == 2 {
		if id, ok := job[0].(uint32); ok {
			state.JobID = id
		}
	}
	if fields, ok := props["LogExtraFields"].Value().([][]byte); ok {
		for _, field := range fields {
			state.LogExtraFields = append(state.LogExtraFields, string(field))
		}
	}
	return state, nil
}

// stringProp sets out to a copy of the string property name. godbus decodes the
// strings of a message into shared 4 KiB buffers, so keeping the decoded string itself
// in the daemon's cache would keep its whole buffer alive: about 6 MiB with 1,000
// servers in a heap profile.
func stringProp(props map[string]dbus.Variant, name string, out *string) {
	if v, ok := props[name].Value().(string); ok {
		*out = strings.Clone(v)
	}
}

func uint64Prop(props map[string]dbus.Variant, name string, out *uint64) {
	if v, ok := props[name].Value().(uint64); ok {
		*out = v
	}
}

// busEscape turns a unit name into the last element of its D-Bus object path: every
// byte outside [A-Za-z0-9] becomes _xx, as systemd's bus_label_escape does.
func busEscape(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return b.String()
}

// ServiceProperty reads one property of the service unit name from systemd's
// org.freedesktop.systemd1.Service interface, such as "MemoryMax" or "User".
func (c *Conn) ServiceProperty(ctx context.Context, name, property string) (any, error) {
	return c.UnitProperty(ctx, name, "Service", property)
}

// UnitProperty reads one property of the loaded unit name from systemd's interface
// org.freedesktop.systemd1.<iface>, "Unit" or "Service". Read only units that are
// loaded: for another name systemd loads a placeholder and unloads it again.
func (c *Conn) UnitProperty(ctx context.Context, name, iface, property string) (any, error) {
	free, err := c.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer free()
	path := dbus.ObjectPath("/org/freedesktop/systemd1/unit/" + busEscape(name))
	var value dbus.Variant
	err = c.rawConn().Object("org.freedesktop.systemd1", path).
		CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, "org.freedesktop.systemd1."+iface, property).Store(&value)
	if err != nil {
		return nil, fmt.Errorf("read property %s of unit %s: %w", property, name, err)
	}
	return value.Value(), nil
}
