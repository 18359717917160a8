package spawn

import (
	"context"
	"log/slog"

	"github.com/sdspawner/sdspawner/internal/systemd"
)

// eventNeedsNoRead reports whether the state read that event would trigger can be
// skipped. systemd sends PropertiesChanged for a unit's Unit interface with
// ActiveState and SubState on every change of any of its properties, and each read
// costs systemd a GetUnit and eight Gets, which delay the starts queued behind them.
// The read is skipped when one of these holds:
//
//   - The cached state was read after systemd sent the event (its Seq is greater),
//     so it is at least as new. This covers the events of a start that arrive after
//     the start read the state, and late events of an earlier unit of the same name.
//     A cached end that the daemon has not cleaned up after yet is still read, because
//     the read leads to that cleanup.
//   - The event reports a running or changing state (not inactive, failed or
//     unloaded), or a unit that has never run, and k has a start or stop in progress.
//     The operation reads the state itself once its job is done, so the cache gets a
//     state at least as new as every change made before that read. A start produces
//     up to three such events: inactive for the new unit, activating and active.
//   - The event reports a running or changing state that the cache already holds. Any
//     change between the cached read and the event came with its own event, which
//     differed from the cache and so was read.
//
// An end event is never skipped for the second and third reason, because a server can
// end just after its start job finished, and only such an event reports that end.
//
// NOTE: a change to a running state that happens after an operation's read and before
// the operation ends, such as a restart by Restart=, stays out of the cache until the
// unit's next event.
func (s *Service) eventNeedsNoRead(k key, event systemd.Event) bool {
	skip := s.eventCoveredByCache(k, event)
	if !skip && slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		activeState, _ := event.Changed["ActiveState"].Value().(string)
		slog.Debug("reading a unit's state after an event", "user", k.user, "server", k.server, "unit", event.Unit,
			"active_state", activeState, "removed", event.Removed, "seq", event.Seq)
	}
	return skip
}

func (s *Service) eventCoveredByCache(k key, event systemd.Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.servers[k]
	if !ok || e.unit != event.Unit {
		return false
	}
	cached := e.state
	if cached != nil && event.Seq != 0 && cached.Seq > event.Seq && (!ended(*cached) || e.endHandled) {
		return true
	}

	if event.Removed {
		return false
	}
	activeState, ok := event.Changed["ActiveState"].Value().(string)
	if !ok || activeState == "failed" {
		return false
	}
	if activeState == "inactive" {
		// systemd sets InactiveExitTimestamp when a unit first leaves inactive, so 0
		// marks a unit that was created and has not run yet, not one that ended.
		exited, ok := event.Changed["InactiveExitTimestamp"].Value().(uint64)
		return ok && exited == 0 && s.busy[k]
	}
	if s.busy[k] {
		return true
	}
	subState, _ := event.Changed["SubState"].Value().(string)
	return cached != nil && cached.Loaded() && cached.ActiveState == activeState && cached.SubState == subState
}
