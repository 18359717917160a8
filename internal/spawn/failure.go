package spawn

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sdspawner/sdspawner/internal/journal"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// Bounds of the log excerpt in a failure reason: enough for a Python traceback, small
// enough for the hub's error page.
const (
	failureLogLines     = 20
	failureLineBytes    = 300
	failureReasonBytes  = 4000
	journalSettleChecks = 6
	journalSettleDelay  = 150 * time.Millisecond
)

// failureReason describes why unit, now in state, ended: how its main process ended, and
// the last lines its processes logged in this run.
func (s *Service) failureReason(ctx context.Context, unit string, state systemd.UnitState) string {
	var b strings.Builder
	b.WriteString("The server's process ")
	b.WriteString(describeEnd(state))
	lines := s.lastLogLines(ctx, unit, state.InvocationID)
	if len(lines) == 0 {
		fmt.Fprintf(&b, ". Its log is empty; see `journalctl -u %s`.", unit)
		return b.String()
	}
	b.WriteString(". Last lines of its log:\n")
	for _, line := range lines {
		if len(line) > failureLineBytes {
			line = line[:failureLineBytes] + "..."
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	text := strings.TrimRight(b.String(), "\n")
	if len(text) > failureReasonBytes {
		// Keep the end, where a traceback names the error.
		text = "..." + text[len(text)-failureReasonBytes:]
	}
	return text
}

// describeEnd describes how the main process of a unit in state ended, the way a shell
// would: an exit status, or the signal that killed it.
func describeEnd(state systemd.UnitState) string {
	var text string
	switch state.ExecMainCode {
	case 1:
		text = fmt.Sprintf("exited with status %d", state.ExecMainStatus)
	case 2, 3:
		text = fmt.Sprintf("was killed by signal %d", state.ExecMainStatus)
	default:
		text = "ended"
	}
	switch state.Result {
	case "", "success", "exit-code", "signal", "core-dump":
	case "oom-kill":
		text += " after the kernel killed a process for using more memory than its limit"
	default:
		text += fmt.Sprintf(" (systemd's result: %s)", state.Result)
	}
	return text
}

// lastLogLines returns the last lines that the processes of one run of unit logged,
// without systemd's own messages about the unit. journald may still be storing what
// the process wrote just before it exited, so the log is read until it stops growing.
func (s *Service) lastLogLines(ctx context.Context, unit, invocationID string) []string {
	var lines []string
	for i := 0; i < journalSettleChecks; i++ {
		entries, err := s.tailJournal(journal.Query{Unit: unit, InvocationID: invocationID, Lines: failureLogLines * 2})
		if err != nil {
			return []string{fmt.Sprintf("(the journal could not be read: %v)", err)}
		}
		var next []string
		for _, entry := range entries {
			if entry.PID == 1 {
				continue
			}
			next = append(next, entry.Message)
		}
		if len(next) > failureLogLines {
			next = next[len(next)-failureLogLines:]
		}
		if i > 0 && len(next) == len(lines) && len(next) > 0 {
			return next
		}
		lines = next
		select {
		case <-time.After(journalSettleDelay):
		case <-ctx.Done():
			return lines
		}
	}
	return lines
}

// recordFailure keeps reason as the failure of k's run of unit, for status and ps.
func (s *Service) recordFailure(k key, unit, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.servers[k]
	if !ok || e.unit != unit {
		return
	}
	e.failure = reason
	s.servers[k] = e
}
