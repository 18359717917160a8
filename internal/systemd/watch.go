package systemd

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// unitPathPrefix is the object path namespace of systemd's units.
const unitPathPrefix = "/org/freedesktop/systemd1/unit/"

// Event is one change that systemd reported.
type Event struct {
	// Unit is the unit the event is about; "" for Resync.
	Unit string
	// Changed holds the properties that changed, with their new values.
	Changed map[string]dbus.Variant
	// Removed is true when systemd unloaded the unit.
	Removed bool
	// Resync is true when every unit's state should be read again: once the
	// subscription is in place, and after systemd reloaded or re-executed itself, when
	// events may have been lost.
	Resync bool
	// Reason is the cause of a Resync, for the log.
	Reason string
	// Seq is the signal's position among the messages of the bus connection,
	// comparable with UnitState.Seq. 0 means unknown.
	Seq uint64
}

// ErrWatchClosed is returned by Watch when the bus connection closed.
var ErrWatchClosed = errors.New("the D-Bus connection to systemd closed")

// Watch subscribes to systemd's unit signals and sends each as an Event to events until
// ctx ends, or the connection closes, which it reports as ErrWatchClosed. The first
// event, once the subscription is in place, is a Resync.
func (c *Conn) Watch(ctx context.Context, events chan<- Event) error {
	raw, generation := c.rawConnGeneration()
	signals := make(chan *dbus.Signal, 1024)
	raw.Signal(signals)
	defer raw.RemoveSignal(signals)

	matches := [][]dbus.MatchOption{
		// Only the Unit interface's changes: they carry ActiveState, the one property
		// the receiver acts on. The Service interface's changes are as frequent and
		// larger, and decoding them was a large share of the daemon's CPU time.
		{dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchMember("PropertiesChanged"),
			dbus.WithMatchPathNamespace("/org/freedesktop/systemd1/unit"), dbus.WithMatchArg(0, "org.freedesktop.systemd1.Unit")},
		{dbus.WithMatchInterface("org.freedesktop.systemd1.Manager"), dbus.WithMatchMember("UnitRemoved")},
		{dbus.WithMatchInterface("org.freedesktop.systemd1.Manager"), dbus.WithMatchMember("Reloading")},
		{dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
			dbus.WithMatchArg(0, "org.freedesktop.systemd1")},
	}
	for _, match := range matches {
		if err := raw.AddMatchSignalContext(ctx, match...); err != nil {
			return fmt.Errorf("subscribe to systemd's signals: %w", err)
		}
	}
	// systemd sends unit signals only to clients that called Subscribe.
	manager := raw.Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
	if err := manager.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.Subscribe", 0).Err; err != nil {
		return fmt.Errorf("subscribe to systemd's signals: %w", err)
	}
	// Changes before the subscription were not seen, so the receiver reads every
	// state once now.
	select {
	case events <- Event{Resync: true, Reason: "subscribed to systemd's events"}:
	case <-ctx.Done():
		return ctx.Err()
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case signal, ok := <-signals:
			if !ok {
				return ErrWatchClosed
			}
			event, ok := parseSignal(signal)
			if !ok {
				continue
			}
			event.Seq = messageOrder(generation, signal.Sequence)
			if event.Resync {
				// A re-executed systemd drops its list of subscribers, so subscribe again.
				_ = manager.CallWithContext(ctx, "org.freedesktop.systemd1.Manager.Subscribe", 0).Err
			}
			select {
			case events <- event:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// parseSignal turns one D-Bus signal into an Event, or returns false for a signal that
// carries nothing the daemon uses.
func parseSignal(signal *dbus.Signal) (Event, bool) {
	switch signal.Name {
	case "org.freedesktop.DBus.Properties.PropertiesChanged":
		path := string(signal.Path)
		if !strings.HasPrefix(path, unitPathPrefix) || len(signal.Body) < 2 {
			return Event{}, false
		}
		changed, ok := signal.Body[1].(map[string]dbus.Variant)
		if !ok || len(changed) == 0 {
			return Event{}, false
		}
		return Event{Unit: busUnescape(strings.TrimPrefix(path, unitPathPrefix)), Changed: changed}, true
	case "org.freedesktop.systemd1.Manager.UnitRemoved":
		if len(signal.Body) < 1 {
			return Event{}, false
		}
		unit, ok := signal.Body[0].(string)
		return Event{Unit: unit, Removed: true}, ok
	case "org.freedesktop.systemd1.Manager.Reloading":
		// Reloading(false) marks the end of a reload or re-execution.
		if len(signal.Body) == 1 {
			if active, ok := signal.Body[0].(bool); ok && !active {
				return Event{Resync: true, Reason: "systemd reloaded"}, true
			}
		}
	case "org.freedesktop.DBus.NameOwnerChanged":
		if len(signal.Body) == 3 {
			if owner, ok := signal.Body[2].(string); ok && owner != "" {
				return Event{Resync: true, Reason: "systemd re-executed"}, true
			}
		}
	}
	return Event{}, false
}

// busUnescape reverses busEscape: every _xx becomes the byte with hex value xx.
func busUnescape(label string) string {
	var b strings.Builder
	for i := 0; i < len(label); i++ {
		if label[i] == '_' && i+2 < len(label) {
			var value byte
			if _, err := fmt.Sscanf(label[i+1:i+3], "%02x", &value); err == nil {
				b.WriteByte(value)
				i += 2
				continue
			}
		}
		b.WriteByte(label[i])
	}
	return b.String()
}
