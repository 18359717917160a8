package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// rollbackTimeout is how long requests that are still running at the end of
// shutdownTimeout get to roll back once they are canceled. A canceled start stops its
// unit and removes its environment file, which takes a few D-Bus calls.
const rollbackTimeout = 10 * time.Second

// errShuttingDown is the cause of the cancellation of the requests still running when
// the daemon stops, and so ends up in the error the hub receives.
var errShuttingDown = fmt.Errorf("the daemon is stopping and canceled this request after waiting %s for it; try again", shutdownTimeout)

// requestContexts returns an http.Server BaseContext whose contexts shutdownAPI can
// cancel, and the function that cancels them.
func requestContexts() (func(net.Listener) context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return func(net.Listener) context.Context { return ctx }, cancel
}

// shutdownAPI stops server and lets the requests in progress finish for
// shutdownTimeout. It then cancels the ones still running and waits rollbackTimeout
// for them. A canceled start still waiting for systemd rolls back, and the hub gets an
// error instead of a dropped connection and a server it does not know about.
func shutdownAPI(server *http.Server, cancelRequests context.CancelCauseFunc) error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := server.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		if err != nil {
			return fmt.Errorf("shut down API server: %w", err)
		}
		return nil
	}

	slog.Warn("requests still running after the shutdown timeout; canceling them so that they roll back",
		"timeout", shutdownTimeout, "rollback_timeout", rollbackTimeout)
	cancelRequests(errShuttingDown)
	rollbackCtx, cancelRollback := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancelRollback()
	if err := server.Shutdown(rollbackCtx); err != nil {
		return fmt.Errorf("shut down API server: requests still running %s after they were canceled: %w", rollbackTimeout, err)
	}
	return nil
}
