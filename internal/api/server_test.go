package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdspawner/sdspawner/internal/policy"
)

type fakeBackend struct {
	started []StartRequest
	waits   []time.Duration
}

func (b *fakeBackend) Start(ctx context.Context, req *StartRequest) (Status, error) {
	b.started = append(b.started, *req)
	if req.User == "fail" {
		return Status{}, errors.New("boom for fail")
	}
	return Status{User: req.User, Unit: "u.service", Exists: true, ActiveState: "active"}, nil
}

func (b *fakeBackend) Stop(ctx context.Context, user, server string, now bool) (Status, error) {
	return Status{User: user, Server: server, ActiveState: "inactive"}, nil
}

func (b *fakeBackend) Status(ctx context.Context, user, server string) (Status, error) {
	return Status{User: user, Server: server}, nil
}

func (b *fakeBackend) List(ctx context.Context) ([]ServerInfo, error) {
	mem := uint64(1 << 20)
	return []ServerInfo{{Status: Status{User: "alice", Unit: "jupyter-alice.service", ActiveState: "active"}, MemoryBytes: &mem}}, nil
}

func (b *fakeBackend) Events(ctx context.Context, user, server string, after int, wait time.Duration) (EventsResponse, error) {
	if user == "nobody" {
		return EventsResponse{}, errors.New("no start of nobody")
	}
	b.waits = append(b.waits, wait)
	events := []Event{{Seq: 1, Phase: PhaseAccepted}, {Seq: 2, Phase: PhaseStarted}}
	return EventsResponse{User: user, Server: server, Events: events[min(after, 2):], Done: true}, nil
}

func (b *fakeBackend) Logs(ctx context.Context, user, server string, lines int, follow bool, emit func(LogEntry) error) error {
	if user == "nobody" {
		return errors.New("no server of nobody")
	}
	for i := 0; i < min(lines, 3); i++ {
		if err := emit(LogEntry{PID: 4242, Message: fmt.Sprintf("line %d of %s", i+1, user)}); err != nil {
			return err
		}
	}
	if user == "broken" {
		return errors.New("journal went away")
	}
	return nil
}

func internalKind(error) (string, int) { return "internal", http.StatusInternalServerError }

// serveOnSocket runs the API on a real Unix socket, so that peer credentials come from
// the kernel as in production, and returns an HTTP client bound to it.
func serveOnSocket(t *testing.T, cfg *policy.Config, backend Backend) *http.Client {
	t.Helper()
	return serveHandler(t, cfg, NewServer(cfg, backend, internalKind, "test"))
}

// serveHandler is serveOnSocket for a handler that the test has set up.
func serveHandler(t *testing.T, cfg *policy.Config, handler http.Handler) *http.Client {
	t.Helper()
	cfg.Socket.Path = filepath.Join(t.TempDir(), "api.sock")
	cfg.Socket.Group = ""
	listener, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: handler, ConnContext: ConnContext}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", cfg.Socket.Path)
		},
	}}
}

func call(t *testing.T, client *http.Client, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://sdspawner"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func TestServerAllowsListedUID(t *testing.T) {
	cfg := policy.Default()
	cfg.Callers.UIDs = []uint32{uint32(os.Getuid())}
	client := serveOnSocket(t, &cfg, &fakeBackend{})
	status, body := call(t, client, "GET", "/v1/version", "")
	if status != http.StatusOK || !strings.Contains(body, `"api":1`) {
		t.Errorf("version: %d %s", status, body)
	}
}

func TestServerRejectsUnlistedCaller(t *testing.T) {
	cfg := policy.Default()
	cfg.Callers.UIDs = []uint32{54321}
	cfg.Callers.Groups = nil
	backend := &fakeBackend{}
	client := serveOnSocket(t, &cfg, backend)
	status, body := call(t, client, "POST", "/v1/servers/start", `{"user":"a","cmd":["x"]}`)
	if status != http.StatusForbidden {
		t.Errorf("status %d, want 403", status)
	}
	if !strings.Contains(body, "is not allowed to use sdspawner") || !strings.Contains(body, `"code":"forbidden"`) {
		t.Errorf("body %s", body)
	}
	if len(backend.started) != 0 {
		t.Error("the backend ran for a rejected caller")
	}
}

func TestServerRejectsBadBodies(t *testing.T) {
	cfg := policy.Default()
	cfg.Callers.UIDs = []uint32{uint32(os.Getuid())}
	backend := &fakeBackend{}
	client := serveOnSocket(t, &cfg, backend)
	cases := map[string]string{
		`{"user":"a","user":"b"}`:                  "given twice",
		`{"user":"a","mem_limits":1}`:              "unknown field",
		strings.Repeat(" ", MaxBodyBytes+1) + "{}": "larger than",
	}
	for body, want := range cases {
		status, got := call(t, client, "POST", "/v1/servers/start", body)
		if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d for %.40q", status, body)
		}
		if !strings.Contains(got, want) {
			t.Errorf("body %s, want %q", got, want)
		}
	}
	if len(backend.started) != 0 {
		t.Error("the backend ran for an invalid body")
	}
	if status, body := call(t, client, "GET", "/v1/servers/start", ""); status != http.StatusMethodNotAllowed || !strings.Contains(body, `"code":"invalid_request"`) {
		t.Errorf("GET start: %d %s, want a JSON 405", status, body)
	}
	if status, body := call(t, client, "GET", "/v2/nothing", ""); status != http.StatusNotFound || !strings.Contains(body, `"code":"not_found"`) {
		t.Errorf("unknown path: %d %s, want a JSON 404", status, body)
	}
	req, _ := http.NewRequest("POST", "http://sdspawner/v1/servers/start", strings.NewReader(`{"user":"a","cmd":["x"]}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("form body: status %d, want 415", resp.StatusCode)
	}
	if status, _ := call(t, client, "GET", "/v1/servers/status", ""); status != http.StatusBadRequest {
		t.Errorf("status without user: %d, want 400", status)
	}
}

func TestListenSetsSocketMode(t *testing.T) {
	cfg := policy.Default()
	cfg.Socket.Path = filepath.Join(t.TempDir(), "sub", "api.sock")
	cfg.Socket.Group = ""
	cfg.Socket.Mode = "0600"
	if err := os.MkdirAll(filepath.Dir(cfg.Socket.Path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Socket.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(&cfg); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Listen over a regular file = %v, want an error", err)
	}
	os.Remove(cfg.Socket.Path)
	listener, err := Listen(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	info, err := os.Stat(cfg.Socket.Path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %o, want 600", info.Mode().Perm())
	}
}
