package spawn

import (
	"context"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/sdspawner/sdspawner/internal/systemd"
)

func activeStateEvent(unit, state string) systemd.Event {
	return systemd.Event{Unit: unit, Changed: map[string]dbus.Variant{"ActiveState": dbus.MakeVariant(state)}}
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
	s.HandleEvent(context.Background(), activeStateEvent(unit, "active"))
	if sd.stateCalls != before+1 {
		t.Errorf("an event with no operation in progress read the state %d times, want 1", sd.stateCalls-before)
	}
}
