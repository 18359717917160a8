// Package logging sets up the daemon's slog output: journald's native protocol with one
// journal field per attribute when stderr is connected to the journal, text otherwise.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
)

// FieldPrefix starts every journal field the daemon writes, so that
// `journalctl SDSPAWNER_USER=alice` finds the daemon's records about alice next to the
// lines of alice's servers, whose units carry the same field.
const FieldPrefix = "SDSPAWNER_"

// New returns the daemon's logger at level: a journal handler when stderr is a journal
// stream, else a text handler on fallback.
func New(level slog.Level, fallback io.Writer) *slog.Logger {
	if onJournal, _ := journal.StderrIsJournalStream(); onJournal && journal.Enabled() {
		return slog.New(contextHandler{&journalHandler{level: level}})
	}
	return slog.New(contextHandler{slog.NewTextHandler(fallback, &slog.HandlerOptions{Level: level})})
}

// journalHandler sends each record with journal.Send.
type journalHandler struct {
	level  slog.Level
	attrs  []slog.Attr
	groups []string
}

func (h *journalHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level
}

func (h *journalHandler) Handle(_ context.Context, record slog.Record) error {
	fields := make(map[string]string, record.NumAttrs()+len(h.attrs)+1)
	text := record.Message
	add := func(attr slog.Attr) bool {
		name := FieldName(strings.Join(append(h.groups, attr.Key), "_"))
		value := attr.Value.Resolve().String()
		fields[name] = value
		text += fmt.Sprintf(" %s=%q", attr.Key, value)
		return true
	}
	for _, attr := range h.attrs {
		add(attr)
	}
	record.Attrs(add)
	fields[FieldPrefix+"LEVEL"] = record.Level.String()
	return journal.Send(text, priority(record.Level), fields)
}

func (h *journalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clone := *h
	clone.attrs = append(append([]slog.Attr{}, h.attrs...), attrs...)
	return &clone
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	clone := *h
	clone.groups = append(append([]string{}, h.groups...), name)
	return &clone
}

// FieldName turns an attribute key into a valid journal field name: upper case,
// [A-Z0-9_] only, behind FieldPrefix.
func FieldName(key string) string {
	var b strings.Builder
	b.WriteString(FieldPrefix)
	for _, r := range strings.ToUpper(key) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func priority(level slog.Level) journal.Priority {
	switch {
	case level >= slog.LevelError:
		return journal.PriErr
	case level >= slog.LevelWarn:
		return journal.PriWarning
	case level >= slog.LevelInfo:
		return journal.PriInfo
	default:
		return journal.PriDebug
	}
}
