// Package journal reads one unit's entries from the systemd journal through sd-journal,
// for `sdspawner logs` and for the failure reason of a server that ended during start.
package journal

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/sdjournal"
)

// Entry is one journal line of a unit.
type Entry struct {
	// Time is when journald received the entry.
	Time time.Time `json:"time"`
	// Priority is the syslog level, 0 (emerg) to 7 (debug); 6 (info) when unset.
	Priority int `json:"priority"`
	// Identifier is the process's syslog identifier or command name.
	Identifier string `json:"identifier"`
	// PID is the process that logged the entry.
	PID int `json:"pid"`
	// Message is the text of the entry.
	Message string `json:"message"`
}

// Query selects the entries of one unit.
type Query struct {
	// Unit is the unit's name, such as "jupyter-alice.service".
	Unit string
	// InvocationID, when set, limits the entries to one run of the unit.
	InvocationID string
	// Lines is how many of the newest entries to return; at least 1.
	Lines int
}

// MaxLines bounds Query.Lines, so that one request cannot make the daemon hold a whole
// journal in memory.
const MaxLines = 10000

// followPoll is how long Follow waits for journald before checking its context again.
const followPoll = 500 * time.Millisecond

// Tail returns the newest q.Lines entries of q.Unit, oldest first: what the unit's
// processes wrote, and what systemd logged about the unit.
func Tail(q Query) ([]Entry, error) {
	j, err := open(q)
	if err != nil {
		return nil, err
	}
	defer j.Close()
	entries, _, err := tail(j, q)
	return entries, err
}

// Follow calls emit with the newest q.Lines entries of q.Unit, then with each new entry
// as journald adds it, until ctx ends or emit fails.
func Follow(ctx context.Context, q Query, emit func(Entry) error) error {
	j, err := open(q)
	if err != nil {
		return err
	}
	defer j.Close()
	entries, positioned, err := tail(j, q)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if err := emit(entry); err != nil {
			return err
		}
	}
	if !positioned {
		if err := j.SeekTail(); err != nil {
			return fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
		}
		// After SeekTail the cursor is past the end; stepping back one and reading
		// forward from there skips an entry that is already shown.
		if _, err := j.Previous(); err != nil {
			return fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
		}
	}
	for ctx.Err() == nil {
		n, err := j.Next()
		if err != nil {
			return fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
		}
		if n == 0 {
			j.Wait(followPoll)
			continue
		}
		entry, err := read(j)
		if err != nil {
			return fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
		}
		if err := emit(entry); err != nil {
			return err
		}
	}
	return nil
}

// LastUnit returns the unit of the newest journal entry that a server of user logged,
// or "" when there is none. sdspawner's units carry the user and server as journal
// fields, so the log of a server stays findable after the daemon restarted and forgot
// the unit. userField, serverField and managedField name those fields.
func LastUnit(userField, user, serverField, server, managedField string) (string, error) {
	j, err := sdjournal.NewJournal()
	if err != nil {
		return "", fmt.Errorf("open the journal to find the unit of user %q: %w", user, err)
	}
	defer j.Close()
	for _, m := range []string{managedField + "=1", userField + "=" + user, serverField + "=" + server} {
		if err := j.AddMatch(m); err != nil {
			return "", fmt.Errorf("select journal entries of user %q: %w", user, err)
		}
	}
	if err := j.SeekTail(); err != nil {
		return "", fmt.Errorf("read the journal of user %q: %w", user, err)
	}
	n, err := j.Previous()
	if err != nil || n == 0 {
		return "", err
	}
	unit, err := j.GetDataValue("_SYSTEMD_UNIT")
	if err != nil {
		// An entry without the field, such as one the unit's process sent with
		// another unit's credentials, names no unit.
		return "", nil
	}
	return unit, nil
}

func open(q Query) (*sdjournal.Journal, error) {
	if q.Unit == "" {
		return nil, errors.New("read journal: no unit given")
	}
	j, err := sdjournal.NewJournal()
	if err != nil {
		return nil, fmt.Errorf("open the journal for unit %s: %w", q.Unit, err)
	}
	if err := addMatches(j, q); err != nil {
		j.Close()
		return nil, fmt.Errorf("select journal entries of unit %s: %w", q.Unit, err)
	}
	return j, nil
}

// addMatches selects the unit's own output and systemd's messages about the unit
// (started, failed, killed for memory). systemd's messages come from PID 1 and name the
// unit in the UNIT field. journalctl -u selects the same two groups.
func addMatches(j *sdjournal.Journal, q Query) error {
	matches := []string{"_SYSTEMD_UNIT=" + q.Unit}
	if q.InvocationID != "" {
		matches = append(matches, "_SYSTEMD_INVOCATION_ID="+q.InvocationID)
	}
	for _, m := range matches {
		if err := j.AddMatch(m); err != nil {
			return err
		}
	}
	if err := j.AddDisjunction(); err != nil {
		return err
	}
	matches = []string{"_PID=1", "UNIT=" + q.Unit}
	if q.InvocationID != "" {
		matches = append(matches, "INVOCATION_ID="+q.InvocationID)
	}
	for _, m := range matches {
		if err := j.AddMatch(m); err != nil {
			return err
		}
	}
	return nil
}

// tail reads up to q.Lines entries backwards from the end and returns them oldest
// first. positioned reports whether the journal's cursor is left on the newest entry.
func tail(j *sdjournal.Journal, q Query) (entries []Entry, positioned bool, err error) {
	lines := min(max(q.Lines, 1), MaxLines)
	if err := j.SeekTail(); err != nil {
		return nil, false, fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
	}
	var newest string
	for len(entries) < lines {
		n, err := j.Previous()
		if err != nil {
			return nil, false, fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
		}
		if n == 0 {
			break
		}
		entry, err := read(j)
		if err != nil {
			return nil, false, fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
		}
		if newest == "" {
			if newest, err = j.GetCursor(); err != nil {
				return nil, false, fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
			}
		}
		entries = append(entries, entry)
	}
	for i, k := 0, len(entries)-1; i < k; i, k = i+1, k-1 {
		entries[i], entries[k] = entries[k], entries[i]
	}
	if newest == "" {
		return entries, false, nil
	}
	// Put the cursor back on the newest entry, so that Next returns only later ones.
	if err := j.SeekCursor(newest); err != nil {
		return nil, false, fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
	}
	if _, err := j.Next(); err != nil {
		return nil, false, fmt.Errorf("read journal of unit %s: %w", q.Unit, err)
	}
	return entries, true, nil
}

// read returns the entry at the journal's cursor.
func read(j *sdjournal.Journal) (Entry, error) {
	usec, err := j.GetRealtimeUsec()
	if err != nil {
		return Entry{}, err
	}
	entry := Entry{Time: time.UnixMicro(int64(usec)).UTC(), Priority: 6}
	entry.Message, _ = j.GetDataValue("MESSAGE")
	if value, err := j.GetDataValue("PRIORITY"); err == nil {
		if p, err := strconv.Atoi(value); err == nil {
			entry.Priority = p
		}
	}
	if value, err := j.GetDataValue("SYSLOG_IDENTIFIER"); err == nil {
		entry.Identifier = value
	} else if value, err := j.GetDataValue("_COMM"); err == nil {
		entry.Identifier = value
	}
	if value, err := j.GetDataValue("_PID"); err == nil {
		entry.PID, _ = strconv.Atoi(value)
	}
	return entry, nil
}
