package spawn

import (
	"context"
	"log/slog"

	"github.com/sdspawner/sdspawner/internal/systemd"
)

// refresh reads the state of k's unit from systemd and caches it. It reads only the
// fields that change while a unit runs, which is what the cache serves.
func (s *Service) refresh(ctx context.Context, k key, unit string) (systemd.UnitState, error) {
	state, err := s.sd.RuntimeState(ctx, unit)
	if err != nil {
		return systemd.UnitState{}, newError(KindUnavailable, "%w", err)
	}
	s.cacheState(k, state)
	return state, nil
}

// HandleEvent updates the index from one of systemd's events. An event is taken as a
// hint only: the unit's state is read again from systemd, because events arrive on
// another bus connection than job results and may be older than what a start or stop
// has already seen.
func (s *Service) HandleEvent(ctx context.Context, event systemd.Event) {
	if event.Resync {
		slog.Info("reading every server's state from systemd", "reason", event.Reason)
		s.Resync(ctx)
		return
	}
	if _, ok := event.Changed["ActiveState"]; !ok && !event.Removed {
		return
	}
	k, ok := s.unitOwner(event.Unit)
	if !ok || s.eventNeedsNoRead(k, event) {
		return
	}
	if event.Removed {
		// The unit is gone; a server whose end was already handled needs nothing more.
		if e, ok := s.lookup(k); ok && e.state != nil && ended(*e.state) {
			return
		}
	}
	s.update(ctx, k, event.Unit)
}

// Resync reads the state of every known server's unit from systemd again.
func (s *Service) Resync(ctx context.Context) {
	s.mu.Lock()
	units := make(map[key]string, len(s.servers))
	for k, e := range s.servers {
		units[k] = e.unit
	}
	s.mu.Unlock()
	for k, unit := range units {
		s.update(ctx, k, unit)
	}
}

// update refreshes one server's state. A server whose unit has ended on its own (its
// process exited, crashed or was killed) loses its environment file at once, because
// the file holds the server's API token. The index keeps the final state for the hub's
// next poll, until the hub starts or stops the server again.
func (s *Service) update(ctx context.Context, k key, unit string) {
	state, err := s.refresh(ctx, k, unit)
	if err != nil {
		slog.Warn("reading a unit's state after a systemd event failed", "unit", unit, "err", err)
		return
	}
	if !ended(state) {
		return
	}
	s.mu.Lock()
	busy := s.busy[k]
	s.mu.Unlock()
	if busy {
		// The start or stop in progress handles the environment file itself.
		return
	}
	if s.markEndHandled(k, unit) {
		// A server's end is handled once; the reset below makes systemd send more
		// events about the same unit.
		return
	}
	if err := s.envs.Remove(unit); err != nil {
		slog.Warn("removing the environment file of an ended server failed", "unit", unit, "err", err)
		return
	}
	slog.Info("server ended", "user", k.user, "server", k.server, "unit", unit,
		"active_state", state.ActiveState, "result", state.Result, "exit_status", state.ExecMainStatus)
	// JupyterHub does not call stop for a server that poll already reports as ended,
	// so the failed unit is reset here. Its final state stays in the index, and its
	// output stays in the journal.
	if state.ActiveState == "failed" {
		// The reason is read from the journal in the background, because journald may
		// need a moment to store the last lines. The run's id must be read before the
		// reset.
		state.InvocationID = s.invocationOf(ctx, k, unit)
		go func() { s.recordFailure(k, unit, s.failureReason(s.background, unit, state)) }()
		if err := s.sd.ResetFailed(ctx, unit); err != nil {
			slog.Warn("resetting the failed unit of an ended server failed", "unit", unit, "err", err)
		}
	}
}
