package spawn

import "github.com/sdspawner/sdspawner/internal/systemd"

// eventNeedsNoRead reports whether the state read that event would trigger can be
// skipped. systemd sends PropertiesChanged for a unit's Unit interface with
// ActiveState and SubState on every change of any of its properties, and each read
// costs systemd a GetUnit and seven Gets, which delay the starts queued behind them.
//
// An event that reports an end (inactive, failed) or an unloaded unit is never skipped,
// because a server can end just after its start job finished, and only such an event
// tells the daemon so. Other events are skipped when:
//
//   - k has a start or stop in progress. The operation reads the state itself once its
//     job is done, so the cache gets a state at least as new as every change made
//     before that read. A start produces two such events (activating, active).
//   - The cache already holds the ActiveState and SubState that the event reports. Any
//     change between the cached read and the event came with its own event, which
//     differed from the cache and so was read.
//
// NOTE: a change to a running state that happens after an operation's read and before
// the operation ends, such as a restart by Restart=, stays out of the cache until the
// unit's next event.
func (s *Service) eventNeedsNoRead(k key, event systemd.Event) bool {
	if event.Removed {
		return false
	}
	activeState, ok := event.Changed["ActiveState"].Value().(string)
	if !ok || activeState == "inactive" || activeState == "failed" {
		return false
	}
	subState, _ := event.Changed["SubState"].Value().(string)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[k] {
		return true
	}
	e, ok := s.servers[k]
	return ok && e.unit == event.Unit && e.state != nil && e.state.Loaded() &&
		e.state.ActiveState == activeState && e.state.SubState == subState
}
