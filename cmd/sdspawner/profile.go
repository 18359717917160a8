package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sdspawner/sdspawner/internal/api"
)

// listenProfiling serves Go's runtime profiles (net/http/pprof) on a new Unix socket
// at path, with mode 0600, so that only root can connect. Profiles show user names,
// unit names and memory contents of the daemon, so the socket is never the API socket
// and is off unless --pprof-socket is given. The returned function closes it.
func listenProfiling(path string) (func(), error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("--pprof-socket %q is not an absolute path", path)
	}
	if info, err := os.Lstat(path); err == nil {
		if info.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("--pprof-socket %s exists and is not a socket; remove it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale profiling socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("check profiling socket path %s: %w", path, err)
	}

	// The umask makes the kernel create the socket with mode 0600, so no other user
	// can connect between its creation and the Chmod below.
	oldMask := syscall.Umask(0o177)
	listener, err := net.Listen("unix", path)
	syscall.Umask(oldMask)
	if err != nil {
		return nil, fmt.Errorf("listen on profiling socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		listener.Close()
		return nil, fmt.Errorf("set mode 0600 on profiling socket %s: %w", path, err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	server := &http.Server{
		Handler:           rootOnly(mux),
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: readHeaderTimeout,
	}
	go func() {
		if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("serving profiles stopped", "socket", path, "err", err)
		}
	}()
	slog.Warn("serving Go runtime profiles to root", "socket", path)
	return func() {
		server.Close()
		os.Remove(path)
	}, nil
}

// rootOnly rejects every request whose peer is not uid 0. The socket's mode already
// keeps others out; this check still holds if an admin loosens the mode by mistake.
func rootOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, ok := api.CallerFrom(r.Context())
		if !ok || caller.UID != 0 {
			http.Error(w, "profiles are served to root only", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
