package spawn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// Start creates and starts the unit for one server, and returns its status once systemd
// has executed the server's command. On any error nothing is left behind: no unit, no
// environment file.
func (s *Service) Start(ctx context.Context, req *api.StartRequest) (api.Status, error) {
	p, err := s.planStart(ctx, req)
	if err != nil {
		return api.Status{}, err
	}
	k := key{user: req.User, server: req.Server}
	if err := s.claim(k, "start"); err != nil {
		return api.Status{}, err
	}
	s.beginProgress(k, p.unit)
	s.addEvent(k, p.unit, api.PhaseAccepted, 10, fmt.Sprintf("sdspawner accepted the start: unit %s as Unix user %s", p.unit, p.acct.Name))
	st, err := s.startClaimed(ctx, k, p)
	s.release(k)
	if err != nil {
		s.addEvent(k, p.unit, api.PhaseFailed, 100, err.Error())
	} else {
		s.addEvent(k, p.unit, api.PhaseStarted, 40, fmt.Sprintf("Unit %s is %s (main PID %d)", p.unit, st.SubState, st.MainPID))
		if p.ready != nil {
			go s.waitReady(k, p.unit, p.ready)
		} else {
			s.addEvent(k, p.unit, api.PhaseReady, 100, fmt.Sprintf("Unit %s started; no port was given to check", p.unit))
		}
		// A server that ended while the start was in progress was left alone by the
		// event handler, which skips busy servers; clean it up now.
		if e, ok := s.lookup(k); ok && e.state != nil && ended(*e.state) {
			s.update(ctx, k, p.unit)
		}
	}
	return st, err
}

func (s *Service) startClaimed(ctx context.Context, k key, p plan) (api.Status, error) {
	userServers, allServers := s.serverCounts(k)
	if err := s.cfg.CheckServerCount(k.user, userServers, allServers); err != nil {
		return api.Status{}, newError(KindForbidden, "%w", err)
	}
	if owner, ok := s.unitOwner(p.unit); ok && owner != k {
		return api.Status{}, newError(KindConflict, "unit %s already runs server %q of user %q; change unit_name_template so that every user and server gets its own unit", p.unit, owner.server, owner.user)
	}

	envPath, err := s.envs.Write(p.unit, p.env)
	if err != nil {
		return api.Status{}, err
	}
	props := append(p.props, systemd.PropEnvironmentFile(envPath))
	// The unit's cgroup is new, so every OOM kill it will count happens in this run.
	var noKills uint64
	s.remember(k, entry{unit: p.unit, acct: p.acct, oomSeen: &noKills, limits: limitsOf(props)})

	// The common case, a free unit name, costs one D-Bus call. Only when the name is
	// taken does the daemon look at the unit that has it.
	err = s.sd.StartTransient(ctx, p.unit, props)
	if systemd.IsUnitExists(err) {
		if clearErr := s.clearLeftover(ctx, k, p.unit); clearErr != nil {
			s.forget(k)
			s.removeEnvFile(p.unit)
			return api.Status{}, clearErr
		}
		err = s.sd.StartTransient(ctx, p.unit, props)
	}
	if err != nil {
		startErr := s.startFailure(ctx, p.unit, err)
		s.forget(k)
		if systemd.IsUnitExists(err) {
			// Another start took the name in between; that unit is not this request's.
			s.removeEnvFile(p.unit)
		} else {
			s.cleanup(context.WithoutCancel(ctx), p.unit)
		}
		return api.Status{}, startErr
	}
	slog.Info("server started", "user", k.user, "server", k.server, "unit", p.unit, "unix_user", p.acct.Name)
	for _, warning := range p.warnings {
		slog.Warn("server started with a warning", "user", k.user, "server", k.server, "unit", p.unit, "warning", warning)
	}
	// The state is read back although the finished start job already means the command
	// runs. Events about an earlier unit of the same name may still be on their way,
	// and only a fresh reply from systemd is sure to be about this one.
	if _, err := s.refresh(ctx, k, p.unit); err != nil {
		return api.Status{}, err
	}
	s.setStarted(k, p.unit, time.Now())
	st, err := s.status(ctx, k)
	st.Warnings = p.warnings
	return st, err
}

func (s *Service) removeEnvFile(unit string) {
	if err := s.envs.Remove(unit); err != nil {
		slog.Warn("removing an environment file failed", "unit", unit, "err", err)
	}
}

// clearLeftover makes the unit name free before a start. A failed unit of the same name
// blocks StartTransientUnit until it is reset. A running unit that belongs to the same
// server, left from before a hub restart the hub does not remember, is stopped and
// replaced. A running unit that sdspawner did not create is never touched.
func (s *Service) clearLeftover(ctx context.Context, k key, unit string) error {
	state, err := s.sd.State(ctx, unit)
	if err != nil {
		return newError(KindUnavailable, "read state of unit %s: %w", unit, err)
	}
	if !state.Loaded() {
		return nil
	}
	user, _ := state.Field(fieldUser)
	server, _ := state.Field(fieldServer)
	_, managed := state.Field(fieldManaged)
	if !managed || user != k.user || server != k.server {
		return newError(KindConflict, "unit %s exists and does not belong to server %q of user %q; stop it or change unit_name_template", unit, k.server, k.user)
	}
	switch state.ActiveState {
	case "failed", "inactive":
		return s.sd.ResetFailed(ctx, unit)
	default:
		slog.Warn("replacing a running unit of the same server", "user", k.user, "server", k.server, "unit", unit, "active_state", state.ActiveState)
		if err := s.sd.Stop(ctx, unit); err != nil {
			return fmt.Errorf("stop the earlier unit %s of this server: %w", unit, err)
		}
		return s.sd.ResetFailed(ctx, unit)
	}
}

// startFailure turns a failed start into an error with the reason, from the unit's
// state in systemd.
func (s *Service) startFailure(ctx context.Context, unit string, err error) error {
	if systemd.IsInvalidArgs(err) {
		return invalidf("systemd rejected the unit %s: %w", unit, err)
	}
	if systemd.IsUnitExists(err) {
		return newError(KindConflict, "unit %s is already loaded: %w", unit, err)
	}
	if !errors.Is(err, systemd.ErrJobFailed) {
		return fmt.Errorf("start unit %s: %w", unit, err)
	}
	state, stateErr := s.sd.State(context.WithoutCancel(ctx), unit)
	if stateErr != nil {
		return fmt.Errorf("start unit %s: %w", unit, err)
	}
	return fmt.Errorf("unit %s failed to start: %s: %w", unit, s.failureReason(context.WithoutCancel(ctx), unit, state), err)
}

// cleanup stops and resets unit and removes its environment file, logging what fails.
func (s *Service) cleanup(ctx context.Context, unit string) {
	if err := s.sd.Stop(ctx, unit); err != nil {
		slog.Warn("stop unit during cleanup failed", "unit", unit, "err", err)
	}
	if err := s.sd.ResetFailed(ctx, unit); err != nil {
		slog.Warn("reset unit during cleanup failed", "unit", unit, "err", err)
	}
	if err := s.envs.Remove(unit); err != nil {
		slog.Warn("remove environment file during cleanup failed", "unit", unit, "err", err)
	}
}
