package spawn

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/journal"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// collectEvents reads every progress event of user's default server until the start
// is done or a minute passes.
func collectEvents(t *testing.T, s *Service, user string) []api.Event {
	t.Helper()
	var events []api.Event
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := s.Events(context.Background(), user, "", len(events), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, resp.Events...)
		if resp.Done {
			return events
		}
	}
	t.Fatalf("progress of %s not done; events so far: %+v", user, events)
	return nil
}

func phases(events []api.Event) string {
	names := make([]string, len(events))
	for i, e := range events {
		names[i] = e.Phase
	}
	return strings.Join(names, ",")
}

func TestProgressUntilReady(t *testing.T) {
	s, _, _ := newTestService(t)
	var attempts atomic.Int32
	s.dial = func(ctx context.Context, addr string) error {
		if addr != "127.0.0.1:8888" {
			t.Errorf("dialled %q, want 127.0.0.1:8888", addr)
		}
		if attempts.Add(1) < 3 {
			return errors.New("connection refused")
		}
		return nil
	}
	req := startRequest("alice")
	req.Port = 8888
	if _, err := s.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	events := collectEvents(t, s, "alice")
	if got := phases(events); got != "accepted,started,waiting,ready" {
		t.Fatalf("phases = %s, want accepted,started,waiting,ready; events %+v", got, events)
	}
	for i, e := range events {
		if e.Seq != i+1 {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		if i > 0 && e.Progress < events[i-1].Progress {
			t.Errorf("progress goes back: %+v", events)
		}
	}
	if !strings.Contains(events[3].Message, "127.0.0.1:8888") {
		t.Errorf("ready message %q does not name the address", events[3].Message)
	}
}

// A server that exits before it listens ends the progress with the reason: the exit
// status and the last lines of its log, which the hub shows to the user.
func TestProgressReportsExitBeforeReady(t *testing.T) {
	s, sd, _ := newTestService(t)
	s.dial = func(context.Context, string) error { return errors.New("connection refused") }
	req := startRequest("alice")
	req.Port = 8888
	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var queries sync.Map
	s.tailJournal = func(q journal.Query) ([]journal.Entry, error) {
		queries.Store(q.InvocationID, q.Unit)
		return testJournal.tail(q)
	}
	sd.mu.Lock()
	u := sd.units[st.Unit]
	u.ActiveState, u.SubState, u.Result, u.ExecMainCode, u.ExecMainStatus, u.MainPID = "failed", "failed", "exit-code", 1, 1, 0
	u.InvocationID = "5f3b0c8f6d2e4a1b9c7d0e1f2a3b4c5d"
	sd.mu.Unlock()
	s.HandleEvent(context.Background(), systemd.Event{Unit: st.Unit, Changed: map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("failed")}})

	events := collectEvents(t, s, "alice")
	last := events[len(events)-1]
	if last.Phase != api.PhaseFailed || !strings.Contains(last.Message, "exited with status 1") || !strings.Contains(last.Message, "No module named 'jupyterhub_missing'") {
		t.Fatalf("last event = %+v, want failed with the exit status and the log", last)
	}
	// Only this run's journal lines are read: the unit's invocation id selects them.
	if _, ok := queries.Load("5f3b0c8f6d2e4a1b9c7d0e1f2a3b4c5d"); !ok {
		t.Error("the journal was not read by the run's invocation id")
	}
	if _, ok := queries.Load(""); ok {
		t.Error("the journal was read without the run's invocation id")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		status, err := s.Status(context.Background(), "alice", "")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(status.Failure, "jupyterhub_missing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status failure = %q, want the log's last lines", status.Failure)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// After the hub stops a server whose start failed, ps still lists it with the reason.
func TestListKeepsFailedStartAfterStop(t *testing.T) {
	s, sd, _ := newTestService(t)
	sd.startErr = systemd.ErrJobFailed
	if _, err := s.Start(context.Background(), startRequest("alice")); err == nil {
		t.Fatal("start succeeded")
	}
	if _, err := s.Stop(context.Background(), "alice", "", false); err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(context.Background())
	if err != nil || len(infos) != 1 || infos[0].ActiveState != "failed" || !strings.Contains(infos[0].Failure, "jupyterhub_missing") {
		t.Fatalf("List = %+v, %v, want alice's failed start with its reason", infos, err)
	}
	// A new start replaces the record.
	sd.startErr = nil
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	infos, _ = s.List(context.Background())
	if len(infos) != 1 || infos[0].ActiveState != "active" || infos[0].Failure != "" {
		t.Fatalf("List after a new start = %+v", infos)
	}
}

func TestProgressStopBeforeReady(t *testing.T) {
	s, _, _ := newTestService(t)
	s.dial = func(context.Context, string) error { return errors.New("connection refused") }
	req := startRequest("alice")
	req.Port = 8888
	if _, err := s.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(context.Background(), "alice", "", false); err != nil {
		t.Fatal(err)
	}
	events := collectEvents(t, s, "alice")
	if last := events[len(events)-1]; last.Phase != api.PhaseStopped {
		t.Fatalf("last event = %+v, want stopped", last)
	}
}

func TestProgressWithoutPort(t *testing.T) {
	s, _, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	if got := phases(collectEvents(t, s, "alice")); got != "accepted,started,ready" {
		t.Fatalf("phases = %s", got)
	}
}

func TestProgressOfRejectedStart(t *testing.T) {
	s, sd, _ := newTestService(t)
	sd.startErr = systemd.ErrJobFailed
	if _, err := s.Start(context.Background(), startRequest("alice")); err == nil {
		t.Fatal("start succeeded")
	}
	events := collectEvents(t, s, "alice")
	if got := phases(events); got != "accepted,failed" || !strings.Contains(events[1].Message, "status 203") {
		t.Fatalf("events = %+v", events)
	}
}

func TestEventsUnknownServer(t *testing.T) {
	s, _, _ := newTestService(t)
	_, err := s.Events(context.Background(), "nobody", "", 0, 0)
	if KindOf(err) != KindNotFound || !strings.Contains(err.Error(), `"nobody"`) {
		t.Fatalf("Events = %v, want not found naming the user", err)
	}
}

// A waiting events request returns as soon as the next event is added.
func TestEventsWaitsForNext(t *testing.T) {
	s, _, _ := newTestService(t)
	k := key{user: "alice"}
	s.beginProgress(k, "u.service")
	s.addEvent(k, "u.service", api.PhaseAccepted, 10, "accepted")
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.addEvent(k, "u.service", api.PhaseStarted, 40, "started")
		// An event of another unit is not this start's.
		s.addEvent(k, "other.service", api.PhaseReady, 100, "ready")
	}()
	resp, err := s.Events(context.Background(), "alice", "", 1, 30*time.Second)
	if err != nil || len(resp.Events) != 1 || resp.Events[0].Phase != api.PhaseStarted || resp.Done {
		t.Fatalf("Events = %+v, %v", resp, err)
	}
}

func TestPlanReady(t *testing.T) {
	s, _, _ := newTestService(t)
	interfaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	t.Cleanup(func() { interfaceAddrs = net.InterfaceAddrs })
	for _, tc := range []struct {
		ip      string
		port    int
		timeout float64
		want    string
		err     string
	}{
		{"", 8888, 0, "127.0.0.1:8888", ""},
		{"0.0.0.0", 8888, 0, "127.0.0.1:8888", ""},
		{"::", 8888, 0, "[::1]:8888", ""},
		{"127.0.0.1", 1, 10, "127.0.0.1:1", ""},
		{"10.1.2.3", 65535, 0, "10.1.2.3:65535", ""},
		{"::ffff:127.0.0.1", 80, 0, "127.0.0.1:80", ""},
		{"169.254.169.254", 80, 0, "", `ip "169.254.169.254" is not an address of this machine`},
		{"10.1.2.4", 80, 0, "", "not an address of this machine"},
		{"example.org", 80, 0, "", `ip "example.org" is not an IP address`},
		{"", 65536, 0, "", "port 65536 is out of range"},
		{"", -1, 0, "", "port -1 is out of range"},
		{"", 80, -1, "", "ready_timeout -1 is out of range"},
		{"", 80, 1e9, "", "ready_timeout 1e+09 is out of range"},
	} {
		target, err := s.planReady(tc.ip, tc.port, tc.timeout)
		if tc.err != "" {
			if err == nil || KindOf(err) != KindInvalid || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("planReady(%q, %d, %g) = %v, want invalid %q", tc.ip, tc.port, tc.timeout, err, tc.err)
			}
			continue
		}
		if err != nil || target.addr != tc.want {
			t.Errorf("planReady(%q, %d) = %+v, %v, want %s", tc.ip, tc.port, target, err, tc.want)
		}
	}
	if target, err := s.planReady("", 0, 0); target != nil || err != nil {
		t.Errorf("planReady with port 0 = %+v, %v, want no check", target, err)
	}
}

// dialPort against a real listener: accepted when something listens, refused after.
func TestDialPort(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := listener.Addr().String()
	if err := dialPort(context.Background(), addr); err != nil {
		t.Errorf("dialPort(%s) with a listener = %v", addr, err)
	}
	listener.Close()
	if err := dialPort(context.Background(), addr); err == nil {
		t.Errorf("dialPort(%s) after close succeeded", addr)
	}
}
