package systemd

import (
	"context"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// runtimeProperties are the properties that RuntimeState reads: the ones that change
// while a service runs and ends. The others in UnitState are set when a transient unit
// is created and do not change.
var runtimeProperties = []struct{ iface, name string }{
	{"org.freedesktop.systemd1.Unit", "LoadState"},
	{"org.freedesktop.systemd1.Unit", "ActiveState"},
	{"org.freedesktop.systemd1.Unit", "SubState"},
	{"org.freedesktop.systemd1.Service", "Result"},
	{"org.freedesktop.systemd1.Service", "MainPID"},
	{"org.freedesktop.systemd1.Service", "ExecMainCode"},
	{"org.freedesktop.systemd1.Service", "ExecMainStatus"},
	// A unit with a queued job, such as a start waiting for a unit ordered before it,
	// is inactive without having ended.
	{"org.freedesktop.systemd1.Unit", "Job"},
}

// RuntimeState reads the state of the service unit name like State, but only the
// fields that change while a unit runs: LoadState, ActiveState, SubState, Result,
// MainPID, ExecMainCode, ExecMainStatus and JobID. The other fields stay empty; the
// daemon reads a unit's cgroup and invocation id with UnitProperty when it needs them.
//
// State's GetAll returns several hundred properties of a service, which costs systemd,
// the bus and the daemon far more than these eight. The Gets are sent together, so the
// read waits for about one round trip after GetUnit.
func (c *Conn) RuntimeState(ctx context.Context, name string) (UnitState, error) {
	notFound := UnitState{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}
	// GetUnit first, for the reason given at State.
	free, err := c.acquire(ctx)
	if err != nil {
		return UnitState{}, err
	}
	// One connection for every call, the one that receives the events, so that the
	// replies' sequence numbers order the result against the events.
	raw, generation := c.rawConnGeneration()
	var path dbus.ObjectPath
	getUnit := raw.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1").
		CallWithContext(ctx, "org.freedesktop.systemd1.Manager.GetUnit", 0, name)
	err = getUnit.Store(&path)
	free()
	if IsNoSuchUnit(err) {
		notFound.Seq = messageOrder(generation, getUnit.ResponseSequence)
		return notFound, nil
	}
	if err != nil {
		return UnitState{}, fmt.Errorf("read state of unit %s: %w", name, err)
	}

	free, err = c.acquireMany(ctx, len(runtimeProperties))
	if err != nil {
		return UnitState{}, err
	}
	defer free()
	object := raw.Object("org.freedesktop.systemd1", path)
	calls := make([]*dbus.Call, len(runtimeProperties))
	for i, prop := range runtimeProperties {
		calls[i] = object.GoWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, nil, prop.iface, prop.name)
	}
	values := make([]dbus.Variant, len(runtimeProperties))
	var lastReply dbus.Sequence
	for i, call := range calls {
		<-call.Done
		lastReply = max(lastReply, call.ResponseSequence)
		err := call.Store(&values[i])
		if IsNoSuchUnit(err) || DBusErrorName(err) == "org.freedesktop.DBus.Error.UnknownObject" {
			// systemd unloaded the unit after GetUnit.
			notFound.Seq = messageOrder(generation, call.ResponseSequence)
			return notFound, nil
		}
		if err != nil {
			return UnitState{}, fmt.Errorf("read property %s of unit %s: %w", runtimeProperties[i].name, name, err)
		}
	}

	state := UnitState{Name: name, Seq: messageOrder(generation, lastReply)}
	for i, prop := range runtimeProperties {
		switch v := values[i].Value().(type) {
		case string:
			// A copy, for the reason given at stringProp.
			v = strings.Clone(v)
			switch prop.name {
			case "LoadState":
				state.LoadState = v
			case "ActiveState":
				state.ActiveState = v
			case "SubState":
				state.SubState = v
			case "Result":
				state.Result = v
			}
		case uint32:
			state.MainPID = v
		case []any:
			// Job is a (uo) struct of the job's id and object path; id 0 means none.
			if len(v) == 2 {
				state.JobID, _ = v[0].(uint32)
			}
		case int32:
			if prop.name == "ExecMainCode" {
				state.ExecMainCode = v
			} else {
				state.ExecMainStatus = v
			}
		}
	}
	return state, nil
}
