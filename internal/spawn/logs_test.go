package spawn

import (
	"context"
	"strings"
	"testing"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/journal"
)

// After a daemon restart the index is empty, and the journal's fields find the unit.
func TestLogsFindUnitInJournal(t *testing.T) {
	s, _, _ := newTestService(t)
	s.lastUnit = func(userField, user, serverField, server, managedField string) (string, error) {
		if userField != fieldUser || serverField != fieldServer || managedField != fieldManaged {
			t.Errorf("searched fields %s, %s, %s", userField, serverField, managedField)
		}
		if user == "bob" && server == "" {
			return "jupyter-bob-singleuser.service", nil
		}
		return "", nil
	}
	var read []string
	s.tailJournal = func(q journal.Query) ([]journal.Entry, error) {
		read = append(read, q.Unit)
		return testJournal.tail(q)
	}
	var lines []string
	err := s.Logs(context.Background(), "bob", "", 10, false, func(entry api.LogEntry) error {
		lines = append(lines, entry.Message)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 1 || read[0] != "jupyter-bob-singleuser.service" {
		t.Errorf("read the journal of %v", read)
	}
	if !strings.Contains(strings.Join(lines, "\n"), "jupyterhub_missing") {
		t.Errorf("lines = %q", lines)
	}

	err = s.Logs(context.Background(), "carol", "", 10, false, func(api.LogEntry) error { return nil })
	if KindOf(err) != KindNotFound || !strings.Contains(err.Error(), `user "carol"`) {
		t.Errorf("Logs of an unknown user = %v, want not found naming the user", err)
	}
}

func TestLogsLinesOutOfRange(t *testing.T) {
	s, _, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	err := s.Logs(context.Background(), "alice", "", 0, false, func(api.LogEntry) error { return nil })
	if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "lines 0") {
		t.Errorf("Logs with 0 lines = %v", err)
	}
}
