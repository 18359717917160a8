package spawn

import "github.com/sdspawner/sdspawner/internal/systemd"

// coveredByOperation reports whether event can be skipped without reading the unit's
// state: k has a start or stop in progress, and the event reports a state in which
// the unit still runs or is changing. The operation reads the state itself once its
// job is done, so the cache gets a state at least as new as every change made before
// that read. A start produces two such events
// (activating, active), and each read costs systemd a GetAll of several hundred
// properties, so skipping them leaves one state read per start.
//
// Events that report an end (inactive, failed) or an unloaded unit are never skipped,
// because a server can end just after its start job finished, and only such an event
// tells the daemon so.
//
// NOTE: a change to a running state that happens after the operation's read and before
// the operation ends, such as a restart by Restart=, stays out of the cache until the
// unit's next event.
func (s *Service) coveredByOperation(k key, event systemd.Event) bool {
	if event.Removed {
		return false
	}
	value, ok := event.Changed["ActiveState"]
	if !ok {
		return false
	}
	state, ok := value.Value().(string)
	if !ok || state == "inactive" || state == "failed" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy[k]
}
