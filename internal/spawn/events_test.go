package spawn

import (
	"context"
	"os"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/sdspawner/sdspawner/internal/systemd"
)

func activeStateEvent(unit, state string) systemd.Event {
	return stateEvent(unit, state, "")
}

func stateEvent(unit, activeState, subState string) systemd.Event {
	return systemd.Event{Unit: unit, Changed: map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant(activeState), "SubState": dbus.MakeVariant(subState),
	}}
}

func TestEventDuringOperationSkipsRead(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	s.busy[key{user: "alice"}] = true

	for _, state := range []string{"activating", "active", "deactivating"} {
		before := sd.stateCalls
		s.HandleEvent(context.Background(), activeStateEvent(unit, state))
		if sd.stateCalls != before {
			t.Errorf("event %q during an operation read the state %d times, want 0", state, sd.stateCalls-before)
		}
	}
}

func TestEndEventDuringOperationReadsState(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	s.busy[key{user: "alice"}] = true
	sd.units[unit].ActiveState = "failed"

	before := sd.stateCalls
	s.HandleEvent(context.Background(), activeStateEvent(unit, "failed"))
	if sd.stateCalls != before+1 {
		t.Errorf("a failed event during an operation read the state %d times, want 1", sd.stateCalls-before)
	}
	e, _ := s.lookup(key{user: "alice"})
	if e.state == nil || e.state.ActiveState != "failed" {
		t.Errorf("cached state after a failed event = %+v, want failed", e.state)
	}
}

func TestEventWithoutOperationReadsState(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"

	before := sd.stateCalls
	s.HandleEvent(context.Background(), stateEvent(unit, "active", "reloading"))
	if sd.stateCalls != before+1 {
		t.Errorf("an event that differs from the cache read the state %d times, want 1", sd.stateCalls-before)
	}
}

func TestEventMatchingCacheSkipsRead(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"

	before := sd.stateCalls
	s.HandleEvent(context.Background(), stateEvent(unit, "active", "running"))
	if sd.stateCalls != before {
		t.Errorf("an event that matches the cached state read the state %d times, want 0", sd.stateCalls-before)
	}
}

func TestEndEventMatchingCacheReadsState(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	u := sd.units[unit]
	u.ActiveState, u.SubState = "failed", "failed"
	s.HandleEvent(context.Background(), stateEvent(unit, "failed", "failed"))

	// The cache now holds failed; a repeated end event is still read.
	before := sd.stateCalls
	s.HandleEvent(context.Background(), stateEvent(unit, "failed", "failed"))
	if sd.stateCalls != before+1 {
		t.Errorf("a repeated end event read the state %d times, want 1", sd.stateCalls-before)
	}
}

func TestEventOlderThanCacheSkipsRead(t *testing.T) {
	s, sd, _ := newTestService(t)
	unit := "jupyter-alice-singleuser.service"
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	sd.units[unit].Seq = 100
	if _, err := s.refresh(context.Background(), key{user: "alice"}, unit); err != nil {
		t.Fatal(err)
	}

	// A late UnitRemoved of an earlier unit of the same name, sent before the read.
	before := sd.stateCalls
	stale := systemd.Event{Unit: unit, Removed: true, Seq: 50}
	s.HandleEvent(context.Background(), stale)
	if sd.stateCalls != before {
		t.Errorf("an event older than the cached state read the state %d times, want 0", sd.stateCalls-before)
	}

	newer := systemd.Event{Unit: unit, Removed: true, Seq: 150}
	s.HandleEvent(context.Background(), newer)
	if sd.stateCalls != before+1 {
		t.Errorf("an event newer than the cached state read the state %d times, want 1", sd.stateCalls-before)
	}
}

func TestOlderEventReadsUnhandledEnd(t *testing.T) {
	s, sd, _ := newTestService(t)
	unit := "jupyter-alice-singleuser.service"
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	// A status request cached the end, without the cleanup that an event's read does.
	u := sd.units[unit]
	u.ActiveState, u.SubState, u.ExecMainCode, u.ExecMainStatus, u.Seq = "failed", "failed", 1, 1, 100
	s.cacheState(key{user: "alice"}, *u)

	s.HandleEvent(context.Background(), systemd.Event{Unit: unit, Seq: 50, Changed: map[string]dbus.Variant{
		"ActiveState": dbus.MakeVariant("failed"), "SubState": dbus.MakeVariant("failed"),
	}})
	if _, err := os.Stat(s.envs.Path(unit)); !os.IsNotExist(err) {
		t.Errorf("the environment file of the ended server is still there: %v", err)
	}
}

func TestNewUnitEventDuringStartSkipsRead(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	s.busy[key{user: "alice"}] = true
	inactive := func(inactiveExit uint64) systemd.Event {
		return systemd.Event{Unit: unit, Changed: map[string]dbus.Variant{
			"ActiveState": dbus.MakeVariant("inactive"), "SubState": dbus.MakeVariant("dead"),
			"InactiveExitTimestamp": dbus.MakeVariant(inactiveExit),
		}}
	}

	before := sd.stateCalls
	s.HandleEvent(context.Background(), inactive(0))
	if sd.stateCalls != before {
		t.Errorf("the inactive event of a unit that never ran read the state %d times, want 0", sd.stateCalls-before)
	}

	s.HandleEvent(context.Background(), inactive(1733300000000000))
	if sd.stateCalls != before+1 {
		t.Errorf("the inactive event of a unit that ran read the state %d times, want 1", sd.stateCalls-before)
	}

	delete(s.busy, key{user: "alice"})
	s.HandleEvent(context.Background(), inactive(0))
	if sd.stateCalls != before+2 {
		t.Errorf("an inactive event with no operation in progress read the state %d times, want 1", sd.stateCalls-before-1)
	}
}
