package spawn

import (
	"context"
	"log/slog"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/journal"
)

// unitForLogs returns the unit whose journal holds k's log, "" if none is known.
func (s *Service) unitForLogs(k key) string {
	if e, ok := s.lookup(k); ok {
		return e.unit
	}
	s.mu.Lock()
	log, ok := s.progress[k]
	s.mu.Unlock()
	if ok {
		return log.unit
	}
	// The daemon restarted since the server ran, but its units' journal fields still
	// name the user and server.
	unit, err := s.lastUnit(fieldUser, k.user, fieldServer, k.server, fieldManaged)
	if err != nil {
		slog.Warn("searching the journal for a server's unit failed", "user", k.user, "server", k.server, "err", err)
	}
	return unit
}

// followJournal is journal.Follow; replaced in unit tests.
var followJournal = journal.Follow

// Logs sends the last lines of the journal of user's server to emit, oldest first, and
// with follow keeps sending new lines until ctx ends. The server is found by its
// current unit, by the unit of its latest start, or else by the journal fields that its
// units carry. So the log of a server that failed and was cleaned up can still be
// read, also after a restart of the daemon.
func (s *Service) Logs(ctx context.Context, user, server string, lines int, follow bool, emit func(api.LogEntry) error) error {
	if lines < 1 || lines > journal.MaxLines {
		return invalidf("lines %d is out of range: expected 1 to %d", lines, journal.MaxLines)
	}
	unit := s.unitForLogs(key{user: user, server: server})
	if unit == "" {
		return newError(KindNotFound, "no server %q of user %q has logged anything; check the user name, and the server name for a named server", server, user)
	}

	q := journal.Query{Unit: unit, Lines: lines}
	send := func(entry journal.Entry) error {
		return emit(api.LogEntry{
			Time:       entry.Time.Format(time.RFC3339Nano),
			Priority:   entry.Priority,
			Identifier: entry.Identifier,
			PID:        entry.PID,
			Message:    entry.Message,
		})
	}

	if follow {
		return followJournal(ctx, q, send)
	}
	entries, err := s.tailJournal(q)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if err := send(entry); err != nil {
			return err
		}
	}
	return nil
}
