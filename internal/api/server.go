package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/sdspawner/sdspawner/internal/logging"
	"github.com/sdspawner/sdspawner/internal/peercred"
	"github.com/sdspawner/sdspawner/internal/policy"
)

// Backend does the work behind the API; *spawn.Service implements it.
type Backend interface {
	Start(ctx context.Context, req *StartRequest) (Status, error)
	Stop(ctx context.Context, user, server string, now bool) (Status, error)
	Status(ctx context.Context, user, server string) (Status, error)
	List(ctx context.Context) ([]ServerInfo, error)
	Events(ctx context.Context, user, server string, after int, wait time.Duration) (EventsResponse, error)
	Logs(ctx context.Context, user, server string, lines int, follow bool, emit func(LogEntry) error) error
}

// Observer receives every request once its response is written. The metrics package
// implements it. action names the endpoint, such as "start"; result is "ok" or the
// error code of the response.
type Observer interface {
	ObserveRequest(action, result string, elapsed time.Duration)
}

// ErrorKind maps a backend error to the API's error code and HTTP status.
type ErrorKind func(err error) (code string, status int)

// Server is the HTTP handler of the API.
type Server struct {
	cfg       *policy.Config
	backend   Backend
	errorKind ErrorKind
	version   string
	mux       *http.ServeMux
	observer  Observer
}

// SetObserver makes the server report every completed request to o.
func (s *Server) SetObserver(o Observer) {
	s.observer = o
}

type callerKey struct{}

// NewServer returns the API handler. errorKind classifies backend errors; version is
// the daemon's version reported by GET /v1/version.
func NewServer(cfg *policy.Config, backend Backend, errorKind ErrorKind, version string) *Server {
	s := &Server{cfg: cfg, backend: backend, errorKind: errorKind, version: version, mux: http.NewServeMux()}
	for path, route := range routes {
		s.mux.HandleFunc(route.method+" "+path, route.handler(s))
	}
	return s
}

// route is one endpoint of the API.
type route struct {
	method  string
	handler func(*Server) http.HandlerFunc
}

// routes lists every endpoint by path.
var routes = map[string]route{
	"/v1/version":        {http.MethodGet, func(s *Server) http.HandlerFunc { return s.handleVersion }},
	"/v1/servers/start":  {http.MethodPost, func(s *Server) http.HandlerFunc { return s.handleStart }},
	"/v1/servers/stop":   {http.MethodPost, func(s *Server) http.HandlerFunc { return s.handleStop }},
	"/v1/servers/status": {http.MethodGet, func(s *Server) http.HandlerFunc { return s.handleStatus }},
	"/v1/servers":        {http.MethodGet, func(s *Server) http.HandlerFunc { return s.handleList }},
	"/v1/servers/events": {http.MethodGet, func(s *Server) http.HandlerFunc { return s.handleEvents }},
	"/v1/servers/logs":   {http.MethodGet, func(s *Server) http.HandlerFunc { return s.handleLogs }},
}

// ConnContext stores the peer credentials of conn in the connection's context; it is
// meant for http.Server.ConnContext. Credentials that cannot be read are stored as
// absent, and every request on that connection is rejected.
func ConnContext(ctx context.Context, conn net.Conn) context.Context {
	caller, err := peercred.Get(conn)
	if err != nil {
		slog.Warn("reading peer credentials failed; rejecting the connection's requests", "err", err)
		return ctx
	}
	return context.WithValue(ctx, callerKey{}, caller)
}

// CallerFrom returns the caller stored by ConnContext.
func CallerFrom(ctx context.Context) (policy.Caller, bool) {
	caller, ok := ctx.Value(callerKey{}).(policy.Caller)
	return caller, ok
}

// ServeHTTP gives the request an id, checks the caller against the policy before any
// handler runs, and reports the completed request to the observer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set("X-Request-Id", id)
	r = r.WithContext(logging.WithRequestID(r.Context(), id))
	rec := &recorder{ResponseWriter: w, result: "ok"}
	began := time.Now()
	s.serve(rec, r)
	if s.observer != nil {
		s.observer.ObserveRequest(actionName(r.URL.Path), rec.result, time.Since(began))
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	caller, ok := CallerFrom(r.Context())
	if !ok {
		writeError(w, http.StatusForbidden, "forbidden", "the caller's credentials could not be read from the socket")
		return
	}
	if !s.cfg.CallerAllowed(caller) {
		slog.WarnContext(r.Context(), "request", "caller_uid", caller.UID, "caller_pid", caller.PID, "action", r.URL.Path, "decision", "reject", "reason", "caller not allowed")
		writeError(w, http.StatusForbidden, "forbidden",
			fmt.Sprintf("uid %d is not allowed to use sdspawner: add it to callers.uids, or the user to a group in callers.groups, in the daemon's configuration", caller.UID))
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// ServeMux would reply in plain text, but every error of this API is JSON.
		if route, ok := routes[r.URL.Path]; ok {
			w.Header().Set("Allow", route.method)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request", fmt.Sprintf("%s takes %s, not %s", r.URL.Path, route.method, r.Method))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API endpoint %s; see docs/api.md", r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, VersionResponse{Version: s.version, API: Version})
}

func (s *Server) handleStart(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if !s.decode(w, r, &req) {
		return
	}
	st, err := s.backend.Start(r.Context(), &req)
	s.finish(w, r, "start", req.User, req.Server, st, err)
}

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	var req StopRequest
	if !s.decode(w, r, &req) {
		return
	}
	st, err := s.backend.Stop(r.Context(), req.User, req.Server, req.Now)
	s.finish(w, r, "stop", req.User, req.Server, st, err)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	if !query.Has("user") {
		writeError(w, http.StatusBadRequest, "invalid_request", "query parameter user is missing")
		return
	}
	user, server := query.Get("user"), query.Get("server")
	st, err := s.backend.Status(r.Context(), user, server)
	if err != nil {
		code, status := s.errorKind(err)
		if status != http.StatusNotFound {
			s.audit(r, slog.LevelInfo, "status", user, server, "", "reject", err.Error())
		}
		writeError(w, status, code, err.Error())
		return
	}
	// The hub polls every server about every 30 seconds, so successful status requests
	// are logged at debug level only.
	s.audit(r, slog.LevelDebug, "status", user, server, st.Unit, "allow", "")
	writeJSON(w, http.StatusOK, st)
}

// decode reads a strict JSON body into v, writing a 400 response and returning false
// when it is invalid.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "invalid_request",
			fmt.Sprintf("Content-Type %q is not supported: send the body as application/json", r.Header.Get("Content-Type")))
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("read request body: %v", err))
		return false
	}
	if err := DecodeStrict(body, v); err != nil {
		s.audit(r, slog.LevelInfo, r.URL.Path, "", "", "", "reject", err.Error())
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return false
	}
	return true
}

// finish writes the response of a start or stop and logs the request once.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, action, user, server string, st Status, err error) {
	if err != nil {
		code, status := s.errorKind(err)
		s.audit(r, slog.LevelInfo, action, user, server, st.Unit, "reject", err.Error())
		writeError(w, status, code, err.Error())
		return
	}
	s.audit(r, slog.LevelInfo, action, user, server, st.Unit, "allow", "")
	writeJSON(w, http.StatusOK, st)
}

// audit logs one request with who asked, for what, and the outcome. It never logs the
// request body, which carries the API token.
func (s *Server) audit(r *http.Request, level slog.Level, action, user, server, unit, decision, reason string) {
	caller, _ := CallerFrom(r.Context())
	slog.Log(r.Context(), level, "request", "caller_uid", caller.UID, "caller_pid", caller.PID, "action", action,
		"user", user, "server", server, "unit", unit, "decision", decision, "reason", reason)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("writing response failed", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	if rec, ok := w.(*recorder); ok {
		rec.result = code
	}
	writeJSON(w, status, ErrorResponse{Error: message, Code: code})
}
