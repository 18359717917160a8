package spawn

import (
	"context"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// Status returns the state of one server. A server the daemon does not know is a
// KindNotFound error.
func (s *Service) Status(ctx context.Context, user, server string) (api.Status, error) {
	k := key{user: user, server: server}
	if _, ok := s.lookup(k); !ok {
		return api.Status{}, newError(KindNotFound, "no server %q of user %q is known to sdspawner", server, user)
	}
	return s.status(ctx, k)
}

func (s *Service) status(ctx context.Context, k key) (api.Status, error) {
	e, ok := s.lookup(k)
	if !ok {
		return api.Status{User: k.user, Server: k.server, ActiveState: "inactive"}, nil
	}
	var state systemd.UnitState
	if e.state != nil {
		state = *e.state
	} else {
		var err error
		state, err = s.sd.State(ctx, e.unit)
		if err != nil {
			return api.Status{}, newError(KindUnavailable, "read state of unit %s: %w", e.unit, err)
		}
		s.cacheState(k, state)
	}
	st := api.Status{
		User:        k.user,
		Server:      k.server,
		Unit:        e.unit,
		Exists:      state.Loaded(),
		ActiveState: state.ActiveState,
		SubState:    state.SubState,
		MainPID:     state.MainPID,
		UnixUser:    e.acct.Name,
		UID:         e.acct.UID,
		Failure:     e.failure,
	}
	if !st.Exists {
		st.ActiveState = "inactive"
	}
	// ExecMainCode 1 (CLD_EXITED) means ExecMainStatus is an exit status; for a
	// killed process it is a signal number, reported as 128+signal like a shell does.
	switch {
	case !st.Exists || st.ActiveState == "active" || st.ActiveState == "activating" || st.ActiveState == "reloading":
	case state.ExecMainCode == 1:
		status := state.ExecMainStatus
		st.ExitStatus = &status
	case state.ExecMainCode == 2 || state.ExecMainCode == 3:
		status := 128 + state.ExecMainStatus
		st.ExitStatus = &status
	}
	return st, nil
}
