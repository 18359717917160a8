package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Conn is a connection to systemd's manager on the system bus. Reconnect replaces the
// underlying bus connections, so one Conn serves for the daemon's whole life.
type Conn struct {
	// calls bounds the method calls in flight, see maxCallsInFlight.
	calls chan struct{}
	// manyMu serializes acquireMany.
	manyMu sync.Mutex

	mu sync.RWMutex
	// bus runs jobs and waits for their JobRemoved signals.
	bus *sddbus.Conn
	// raw is the first of bus's two bus connections, for calls go-systemd does not wrap.
	raw *dbus.Conn
	// generation counts the connections made, so that Seq values stay ordered across
	// a reconnect.
	generation uint64
}

// Connect opens a connection to systemd on the system bus.
func Connect(ctx context.Context) (*Conn, error) {
	c := &Conn{calls: make(chan struct{}, maxCallsInFlight)}
	if err := c.Reconnect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Reconnect opens new bus connections and closes the old ones, if any.
func (c *Conn) Reconnect(ctx context.Context) error {
	var raw *dbus.Conn
	bus, err := sddbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dialSystemBus(ctx)
		if err == nil && raw == nil {
			raw = conn
		}
		return conn, err
	})
	if err != nil {
		return fmt.Errorf("connect to systemd on the system bus: %w", err)
	}
	c.mu.Lock()
	old := c.bus
	c.bus, c.raw = bus, raw
	c.generation++
	c.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

// maxCallsInFlight bounds the D-Bus calls the daemon has waiting for a reply. The
// system bus rejects a connection's calls beyond a limit (max_replies_per_connection,
// 128 in dbus-daemon's default system.conf), which a burst of starts would reach.
const maxCallsInFlight = 64

// acquire waits for a free call slot; the returned function frees it.
func (c *Conn) acquire(ctx context.Context) (func(), error) {
	select {
	case c.calls <- struct{}{}:
		return func() { <-c.calls }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a free D-Bus call slot: %w", ctx.Err())
	}
}

// acquireMany waits for n free call slots, for calls sent together; the returned
// function frees them. Only one caller at a time collects several slots, so that
// callers holding part of what they need cannot block each other for good.
func (c *Conn) acquireMany(ctx context.Context, n int) (func(), error) {
	c.manyMu.Lock()
	defer c.manyMu.Unlock()
	for acquired := range n {
		select {
		case c.calls <- struct{}{}:
		case <-ctx.Done():
			for range acquired {
				<-c.calls
			}
			return nil, fmt.Errorf("wait for %d free D-Bus call slots: %w", n, ctx.Err())
		}
	}
	return func() {
		for range n {
			<-c.calls
		}
	}, nil
}

// jobs returns the connection that runs jobs.
func (c *Conn) jobs() *sddbus.Conn {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.bus
}

// rawConn returns the plain bus connection.
func (c *Conn) rawConn() *dbus.Conn {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.raw
}

// rawConnGeneration returns the plain bus connection and its generation.
func (c *Conn) rawConnGeneration() (*dbus.Conn, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.raw, c.generation
}

// messageOrder turns a message's sequence number on the connection of generation into
// a value that orders messages of all connections: a later connection's messages come
// after an earlier one's. It returns 0 for a message without a sequence number.
func messageOrder(generation uint64, seq dbus.Sequence) uint64 {
	if seq == dbus.NoSequence {
		return 0
	}
	return generation<<48 | uint64(seq)
}

// dialSystemBus opens a private, authenticated connection to the system bus.
func dialSystemBus(ctx context.Context) (*dbus.Conn, error) {
	// godbus closes a connection when its context ends. The daemon cancels its context
	// on SIGTERM and then still finishes the starts and stops in progress, whose job
	// results arrive on this connection, so the connection must outlive ctx. Conn.Close
	// closes it.
	conn, err := dbus.SystemBusPrivate(dbus.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, err
	}
	methods := []dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}
	if err := conn.Auth(methods); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to the system bus: %w", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send Hello to the system bus: %w", err)
	}
	return conn, nil
}

// manager returns the D-Bus object of systemd's manager.
func (c *Conn) manager() dbus.BusObject {
	return c.rawConn().Object("org.freedesktop.systemd1", "/org/freedesktop/systemd1")
}

// Close closes the connection.
func (c *Conn) Close() { c.jobs().Close() }

// Version returns systemd's version string, such as "252.22-1~deb12u1".
func (c *Conn) Version(ctx context.Context) (string, error) {
	var version string
	err := c.manager().CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		"org.freedesktop.systemd1.Manager", "Version").Store(&version)
	if err != nil {
		return "", fmt.Errorf("read systemd's version: %w", err)
	}
	return version, nil
}

// ErrJobFailed is returned, wrapped, when systemd ran a job but its result was not
// "done".
var ErrJobFailed = errors.New("systemd job did not succeed")

// StartTransient creates and starts the transient unit name with props, and waits until
// systemd finishes the start job. With Type=exec the job is done once the main process
// has been executed.
func (c *Conn) StartTransient(ctx context.Context, name string, props []Property) error {
	done := make(chan string, 1)
	free, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	_, err = c.jobs().StartTransientUnitContext(ctx, name, "fail", props, done)
	free()
	if err != nil {
		return fmt.Errorf("start transient unit %s: %w", name, err)
	}
	return waitJob(ctx, "start", name, done)
}

// Stop stops the unit name and waits until the stop job is finished. Stopping a unit
// that is not loaded is not an error.
func (c *Conn) Stop(ctx context.Context, name string) error {
	done := make(chan string, 1)
	free, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	_, err = c.jobs().StopUnitContext(ctx, name, "replace", done)
	free()
	if err != nil {
		if IsNoSuchUnit(err) {
			return nil
		}
		return fmt.Errorf("stop unit %s: %w", name, err)
	}
	return waitJob(ctx, "stop", name, done)
}

// Kill sends SIGKILL to every process of the unit name.
func (c *Conn) Kill(ctx context.Context, name string) error {
	free, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer free()
	if err := c.jobs().KillUnitWithTarget(ctx, name, sddbus.All, int32(syscall.SIGKILL)); err != nil && !IsNoSuchUnit(err) {
		return fmt.Errorf("kill unit %s: %w", name, err)
	}
	return nil
}

// ResetFailed clears the failed state of the unit name so that systemd unloads it and
// the name can be used again. A unit that is not failed or not loaded is left as it is.
func (c *Conn) ResetFailed(ctx context.Context, name string) error {
	free, err := c.acquire(ctx)
	if err != nil {
		return err
	}
	defer free()
	err = c.jobs().ResetFailedUnitContext(ctx, name)
	if err != nil && !IsNoSuchUnit(err) {
		return fmt.Errorf("reset failed unit %s: %w", name, err)
	}
	return nil
}

func waitJob(ctx context.Context, job, name string, done <-chan string) error {
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("%w: %s of %s ended with result %q", ErrJobFailed, job, name, result)
		}
		return nil
	case <-ctx.Done():
		// The cause gives the reason, such as the daemon stopping, where ctx.Err() is only
		// "context canceled".
		return fmt.Errorf("wait for %s job of %s: %w", job, name, context.Cause(ctx))
	}
}

// DBusErrorName returns the D-Bus error name carried by err, or "".
func DBusErrorName(err error) string {
	var dbusErr dbus.Error
	if errors.As(err, &dbusErr) {
		return dbusErr.Name
	}
	var dbusErrPtr *dbus.Error
	if errors.As(err, &dbusErrPtr) {
		return dbusErrPtr.Name
	}
	return ""
}

// IsNoSuchUnit reports whether err is systemd's error for a unit that is not loaded.
func IsNoSuchUnit(err error) bool {
	name := DBusErrorName(err)
	return name == "org.freedesktop.systemd1.NoSuchUnit" || name == "org.freedesktop.systemd1.LoadFailed"
}

// IsUnitExists reports whether err is systemd's error for a transient unit whose name is
// taken by a loaded unit.
func IsUnitExists(err error) bool {
	return DBusErrorName(err) == "org.freedesktop.systemd1.UnitExists"
}

// IsInvalidArgs reports whether systemd rejected a property or its value.
func IsInvalidArgs(err error) bool {
	name := DBusErrorName(err)
	return name == "org.freedesktop.DBus.Error.InvalidArgs" || name == "org.freedesktop.DBus.Error.PropertyReadOnly" ||
		name == "org.freedesktop.DBus.Error.UnknownProperty"
}
