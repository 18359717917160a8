package spawn

import (
	"context"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
)

// maxEventWait bounds how long one events request may wait for a new event, below the
// API server's write timeout.
const maxEventWait = 60 * time.Second

// progressLog holds the events of a server's latest start.
type progressLog struct {
	unit   string
	events []api.Event
	done   bool
	// changed is closed, and replaced, whenever an event is added.
	changed chan struct{}
}

// beginProgress starts a new progress log for k, dropping the previous start's.
func (s *Service) beginProgress(k key, unit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.progress[k]; ok {
		close(old.changed)
	}
	s.progress[k] = &progressLog{unit: unit, changed: make(chan struct{})}
}

// addEvent appends an event to the progress log of k's start of unit. An event for a
// unit that is no longer k's latest start is dropped, and so is every event after a
// phase that ends the start.
func (s *Service) addEvent(k key, unit, phase string, progress int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	log, ok := s.progress[k]
	if !ok || log.unit != unit || log.done {
		return
	}
	log.events = append(log.events, api.Event{
		Seq:      len(log.events) + 1,
		Time:     time.Now().UTC().Format(time.RFC3339Nano),
		Phase:    phase,
		Progress: progress,
		Message:  message,
	})
	switch phase {
	case api.PhaseReady, api.PhaseFailed, api.PhaseStopped, api.PhaseTimeout:
		log.done = true
	}
	close(log.changed)
	log.changed = make(chan struct{})
}

// Events returns the progress events of the latest start of user's server that come
// after the event numbered after. When there are none yet and the start is not done,
// it waits up to wait for one.
func (s *Service) Events(ctx context.Context, user, server string, after int, wait time.Duration) (api.EventsResponse, error) {
	k := key{user: user, server: server}
	wait = min(max(wait, 0), maxEventWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		log, ok := s.progress[k]
		if !ok {
			s.mu.Unlock()
			return api.EventsResponse{}, newError(KindNotFound, "no start of server %q of user %q is known to sdspawner since it started", server, user)
		}
		resp := api.EventsResponse{User: user, Server: server, Unit: log.unit, Done: log.done, Events: []api.Event{}}
		if after >= 0 && after < len(log.events) {
			resp.Events = append(resp.Events, log.events[after:]...)
		}
		changed := log.changed
		s.mu.Unlock()
		if len(resp.Events) > 0 || resp.Done {
			return resp, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return resp, nil
		case <-ctx.Done():
			return resp, nil
		}
	}
}
