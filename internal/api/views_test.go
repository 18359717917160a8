package api

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sdspawner/sdspawner/internal/policy"
)

func allowedConfig() policy.Config {
	cfg := policy.Default()
	cfg.Callers.UIDs = []uint32{uint32(os.Getuid())}
	return cfg
}

func TestListServers(t *testing.T) {
	cfg := allowedConfig()
	client := serveOnSocket(t, &cfg, &fakeBackend{})
	status, body := call(t, client, "GET", "/v1/servers", "")
	if status != http.StatusOK || !strings.Contains(body, `"unit":"jupyter-alice.service"`) || !strings.Contains(body, `"memory_bytes":1048576`) || !strings.Contains(body, `"cpu_seconds":null`) {
		t.Fatalf("GET /v1/servers = %d %s", status, body)
	}
}

func TestEventsParameters(t *testing.T) {
	cfg := allowedConfig()
	backend := &fakeBackend{}
	client := serveOnSocket(t, &cfg, backend)
	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{"user=alice&after=1&wait=2.5", 200, `"phase":"started"`},
		{"user=alice", 200, `"phase":"accepted"`},
		{"", 400, "query parameter user is missing"},
		{"user=alice&after=-1", 400, `after \"-1\" is not an integer`},
		{"user=alice&after=x", 400, `after \"x\"`},
		{"user=alice&wait=61", 400, `wait \"61\" is not a number of seconds from 0 to 60`},
		{"user=alice&wait=NaN", 400, `wait \"NaN\"`},
		{"user=nobody", 500, "no start of nobody"},
	} {
		status, body := call(t, client, "GET", "/v1/servers/events?"+tc.query, "")
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("events?%s = %d %s, want %d with %s", tc.query, status, body, tc.status, tc.want)
		}
	}
	if len(backend.waits) != 2 || backend.waits[0] != 2500*time.Millisecond {
		t.Errorf("waits passed on = %v", backend.waits)
	}
}

func TestLogsStream(t *testing.T) {
	cfg := allowedConfig()
	client := serveOnSocket(t, &cfg, &fakeBackend{})
	status, body := call(t, client, "GET", "/v1/servers/logs?user=alice&lines=2", "")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if status != 200 || len(lines) != 2 || !strings.Contains(lines[1], `"message":"line 2 of alice"`) {
		t.Fatalf("logs = %d %q", status, body)
	}
	for query, want := range map[string]string{
		"user=alice&lines=0":       `lines \"0\" is not an integer from 1 to 10000`,
		"user=alice&lines=10001":   "from 1 to 10000",
		"user=alice&follow=maybe":  `follow \"maybe\" is not true or false`,
		"server=x":                 "query parameter user is missing",
		"user=nobody":              "no server of nobody",
		"user=broken&follow=false": `"error":"journal went away"`,
	} {
		_, body := call(t, client, "GET", "/v1/servers/logs?"+query, "")
		if !strings.Contains(body, want) {
			t.Errorf("logs?%s = %s, want %s", query, body, want)
		}
	}
}

type seenRequest struct{ action, result string }

type fakeObserver struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (o *fakeObserver) ObserveRequest(action, result string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, seenRequest{action, result})
}

// Every response carries a request id, and the observer receives each request's action
// and result, with made-up paths counted as "other".
func TestRequestIDAndObserver(t *testing.T) {
	cfg := allowedConfig()
	observer := &fakeObserver{}
	cfg.Socket.Path = ""
	server := NewServer(&cfg, &fakeBackend{}, internalKind, "test")
	server.SetObserver(observer)
	client := serveHandler(t, &cfg, server)

	ids := map[string]bool{}
	for _, path := range []string{"/v1/version", "/v1/servers/status", "/v1/no/such/thing"} {
		resp, err := client.Get("http://sdspawner" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		id := resp.Header.Get("X-Request-Id")
		if len(id) != 16 || ids[id] {
			t.Errorf("X-Request-Id of %s = %q, want a new 16-digit id", path, id)
		}
		ids[id] = true
	}
	observer.mu.Lock()
	defer observer.mu.Unlock()
	want := []seenRequest{{"version", "ok"}, {"status", "invalid_request"}, {"other", "not_found"}}
	if len(observer.seen) != len(want) {
		t.Fatalf("observed %v, want %v", observer.seen, want)
	}
	for i := range want {
		if observer.seen[i] != want[i] {
			t.Errorf("observed %v, want %v", observer.seen, want)
		}
	}
}
