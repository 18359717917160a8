package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Defaults and bounds of the query parameters of the read-only endpoints.
const (
	defaultLogLines = 100
	maxEventWait    = 60.0
)

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	servers, err := s.backend.List(r.Context())
	if err != nil {
		code, status := s.errorKind(err)
		s.audit(r, slog.LevelWarn, "list", "", "", "", "reject", err.Error())
		writeError(w, status, code, err.Error())
		return
	}
	s.audit(r, slog.LevelDebug, "list", "", "", "", "allow", "")
	writeJSON(w, http.StatusOK, ServerList{Servers: servers})
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	if !query.Has("user") {
		writeError(w, http.StatusBadRequest, "invalid_request", "query parameter user is missing")
		return
	}
	after, ok := intParam(w, query.Get("after"), "after", 0, 0, 1<<20)
	if !ok {
		return
	}
	wait := 0.0
	if text := query.Get("wait"); text != "" {
		var err error
		wait, err = strconv.ParseFloat(text, 64)
		if err != nil || !(wait >= 0 && wait <= maxEventWait) {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("query parameter wait %q is not a number of seconds from 0 to %g", text, maxEventWait))
			return
		}
	}
	user, server := query.Get("user"), query.Get("server")
	resp, err := s.backend.Events(r.Context(), user, server, after, time.Duration(wait*float64(time.Second)))
	if err != nil {
		code, status := s.errorKind(err)
		if status != http.StatusNotFound {
			s.audit(r, slog.LevelWarn, "events", user, server, "", "reject", err.Error())
		}
		writeError(w, status, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// handleLogs streams journal lines as JSON, one object per line (application/x-ndjson).
// An error found before the first line is an ordinary error response. An error found
// later ends the stream with an object that has an "error" field.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	if !query.Has("user") {
		writeError(w, http.StatusBadRequest, "invalid_request", "query parameter user is missing")
		return
	}
	lines, ok := intParam(w, query.Get("lines"), "lines", defaultLogLines, 1, 10000)
	if !ok {
		return
	}
	follow := false
	if text := query.Get("follow"); text != "" {
		var err error
		if follow, err = strconv.ParseBool(text); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("query parameter follow %q is not true or false", text))
			return
		}
	}
	user, server := query.Get("user"), query.Get("server")

	controller := http.NewResponseController(w)
	if follow {
		// A followed log stays open as long as the admin watches it.
		if err := controller.SetWriteDeadline(time.Time{}); err != nil {
			slog.Debug("clearing the write deadline of a followed log failed", "err", err)
		}
	}

	started := false
	encoder := json.NewEncoder(w)
	err := s.backend.Logs(r.Context(), user, server, lines, follow, func(entry LogEntry) error {
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := encoder.Encode(entry); err != nil {
			return fmt.Errorf("send log line: %w", err)
		}
		if follow {
			return controller.Flush()
		}
		return nil
	})
	if err == nil && !started {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		started = true
	}

	s.audit(r, slog.LevelInfo, "logs", user, server, "", decision(err), errText(err))
	if err == nil || errors.Is(err, r.Context().Err()) {
		return
	}
	if !started {
		code, status := s.errorKind(err)
		writeError(w, status, code, err.Error())
		return
	}
	if rec, ok := w.(*recorder); ok {
		rec.result = "internal"
	}
	_ = encoder.Encode(ErrorResponse{Error: err.Error(), Code: "internal"})
}

// intParam parses the query parameter name, whose text is value, as an integer from
// low to high; "" gives def. It writes a 400 response and returns false if invalid.
func intParam(w http.ResponseWriter, value, name string, def, low, high int) (int, bool) {
	if value == "" {
		return def, true
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < low || n > high {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("query parameter %s %q is not an integer from %d to %d", name, value, low, high))
		return 0, false
	}
	return n, true
}

func decision(err error) string {
	if err != nil {
		return "reject"
	}
	return "allow"
}

func errText(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}
