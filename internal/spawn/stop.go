package spawn

import (
	"context"
	"log/slog"

	"github.com/sdspawner/sdspawner/internal/api"
)

// Stop stops one server's unit and removes its environment file. Without now systemd
// sends SIGTERM and, after the unit's stop timeout, SIGKILL; with now every process gets
// SIGKILL at once. Stopping a server that is not running succeeds.
func (s *Service) Stop(ctx context.Context, user, server string, now bool) (api.Status, error) {
	k := key{user: user, server: server}
	if err := s.claimWhenFree(ctx, k); err != nil {
		return api.Status{}, err
	}
	defer s.release(k)

	e, ok := s.lookup(k)
	if !ok {
		return api.Status{User: user, Server: server, ActiveState: "inactive"}, nil
	}
	if now {
		if err := s.sd.Kill(ctx, e.unit); err != nil {
			return api.Status{}, err
		}
	}
	if err := s.sd.Stop(ctx, e.unit); err != nil {
		return api.Status{}, err
	}
	// Read the final state before the reset unloads a failed unit with its exit status.
	final := api.Status{User: user, Server: server, Unit: e.unit, ActiveState: "inactive"}
	if _, err := s.refresh(ctx, k, e.unit); err == nil {
		final, _ = s.status(ctx, k)
	}
	if err := s.sd.ResetFailed(ctx, e.unit); err != nil {
		slog.Warn("reset unit after stop failed", "unit", e.unit, "err", err)
	}
	if err := s.envs.Remove(e.unit); err != nil {
		return api.Status{}, err
	}
	s.forget(k)
	slog.Info("server stopped", "user", user, "server", server, "unit", e.unit, "now", now)
	return final, nil
}
