package spawn

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
)

// Bounds of the readiness check.
const (
	defaultReadyTimeout = 5 * time.Minute
	maxReadyTimeout     = time.Hour
	// readyDialTimeout bounds one connection attempt to the server's port.
	readyDialTimeout = time.Second
	// readyFirstDelay and readyMaxDelay bound the wait between attempts: short at
	// first, because a server that is ready at once should be reported at once.
	readyFirstDelay = 20 * time.Millisecond
	readyMaxDelay   = 250 * time.Millisecond
)

// readyTarget is the address a started server is expected to listen on, and how long to wait.
type readyTarget struct {
	addr    string
	timeout time.Duration
}

// planReady checks the address and timeout of a start's readiness check. Only an
// address of this machine is accepted, so that a caller cannot make the root daemon
// probe other hosts. "" and unspecified addresses ("0.0.0.0", "::") mean the server
// listens on every local address, which loopback reaches.
func (s *Service) planReady(ip string, port int, timeout float64) (*readyTarget, error) {
	if port == 0 {
		return nil, nil
	}
	if port < 1 || port > 65535 {
		return nil, invalidf("port %d is out of range: expected 1 to 65535, or 0 to skip the readiness check", port)
	}
	if !(timeout >= 0 && timeout <= maxReadyTimeout.Seconds()) {
		return nil, invalidf("ready_timeout %g is out of range: expected 0 (the default of %v) to %v seconds", timeout, defaultReadyTimeout, maxReadyTimeout.Seconds())
	}

	target := &readyTarget{timeout: defaultReadyTimeout}
	if timeout > 0 {
		target.timeout = time.Duration(timeout * float64(time.Second))
	}
	if ip == "" || ip == "*" {
		target.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		return target, nil
	}

	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, invalidf("ip %q is not an IP address: set c.SystemdSpawner.ip to an address of this machine, such as 127.0.0.1", ip)
	}
	addr = addr.Unmap()
	switch {
	case addr.IsUnspecified() && addr.Is4():
		addr = netip.MustParseAddr("127.0.0.1")
	case addr.IsUnspecified():
		addr = netip.IPv6Loopback()
	case addr.IsLoopback():
	default:
		local, err := s.isLocalAddr(addr)
		if err != nil {
			return nil, fmt.Errorf("list this machine's addresses to check ip %q: %w", ip, err)
		}
		if !local {
			return nil, invalidf("ip %q is not an address of this machine: sdspawner starts servers here, so they can only listen here; use 127.0.0.1 or one of this machine's addresses", ip)
		}
	}
	target.addr = net.JoinHostPort(addr.String(), strconv.Itoa(port))
	return target, nil
}

// interfaceAddrs lists this machine's addresses; replaced in unit tests.
var interfaceAddrs = net.InterfaceAddrs

func (s *Service) isLocalAddr(addr netip.Addr) (bool, error) {
	addrs, err := interfaceAddrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err == nil && prefix.Addr().Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// waitReady reports, as progress events, when the server of k in unit accepts
// connections on target, or why it never did: its unit ended, or the timeout ran out.
// It runs in its own goroutine after a successful start.
//
// NOTE: a connection shows that something listens on the port, not that the unit's
// own process does; JupyterHub's HTTP check of the server still follows.
func (s *Service) waitReady(k key, unit string, target *readyTarget) {
	ctx, cancel := context.WithTimeout(s.background, target.timeout)
	defer cancel()
	s.addEvent(k, unit, api.PhaseWaiting, 70, fmt.Sprintf("Waiting for the server to listen on %s", target.addr))
	delay := readyFirstDelay
	for {
		e, ok := s.lookup(k)
		if !ok || e.unit != unit {
			s.addEvent(k, unit, api.PhaseStopped, 100, "The server was stopped before it listened")
			return
		}
		if e.state != nil && ended(*e.state) && !s.isBusy(k) {
			// The end handler may have read the reason from the journal already.
			reason := e.failure
			if reason == "" {
				state := *e.state
				state.InvocationID = s.invocationOf(ctx, k, unit)
				reason = s.failureReason(ctx, unit, state)
				s.recordFailure(k, unit, reason)
			}
			s.addEvent(k, unit, api.PhaseFailed, 100, reason)
			return
		}
		if s.dial(ctx, target.addr) == nil {
			slog.Debug("server is listening", "user", k.user, "server", k.server, "unit", unit, "address", target.addr)
			s.addEvent(k, unit, api.PhaseReady, 100, fmt.Sprintf("Server is listening on %s", target.addr))
			return
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			if s.background.Err() != nil {
				return
			}
			s.addEvent(k, unit, api.PhaseTimeout, 100, fmt.Sprintf("The server did not listen on %s within %v; see `sdspawner logs %s`", target.addr, target.timeout, k.user))
			return
		}
		delay = min(2*delay, readyMaxDelay)
	}
}

// dialPort connects to addr once and closes the connection.
func dialPort(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, readyDialTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
