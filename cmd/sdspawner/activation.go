package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/policy"
)

// listenAPI returns the API's listener. When systemd passes a socket (socket
// activation, LISTEN_FDS), the daemon serves on it. The socket then stays open in
// systemd while the daemon restarts, and connections made meanwhile wait in its
// backlog. Without one, the daemon creates the socket itself as cfg describes.
func listenAPI(cfg *policy.Config) (net.Listener, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return api.Listen(cfg)
	}
	listener, err := inheritedListener(files)
	if err != nil {
		return nil, err
	}
	path := listener.Addr().String()
	slog.Info("using the socket passed by systemd", "socket", path)
	warnSocketMismatch(cfg, path)
	return listener, nil
}

// inheritedListener turns the descriptors systemd passed into the API's listener. It
// accepts exactly one listening Unix stream socket, because the daemon serves one API.
func inheritedListener(files []*os.File) (net.Listener, error) {
	defer func() {
		for _, file := range files {
			file.Close()
		}
	}()
	if len(files) != 1 {
		names := make([]string, len(files))
		for i, file := range files {
			names[i] = file.Name()
		}
		return nil, fmt.Errorf("systemd passed %d sockets %v, but the daemon serves exactly one: give sdspawner.socket a single ListenStream= line", len(files), names)
	}
	listener, err := net.FileListener(files[0])
	if err != nil {
		return nil, fmt.Errorf("use the socket %s passed by systemd: %w; it must be a listening stream socket (ListenStream=)", files[0].Name(), err)
	}
	if _, ok := listener.(*net.UnixListener); !ok {
		listener.Close()
		return nil, fmt.Errorf("the socket passed by systemd listens on %s %s, but the daemon serves only on a Unix socket: set ListenStream= to a path", listener.Addr().Network(), listener.Addr())
	}
	return listener, nil
}

// warnSocketMismatch logs a warning for each [socket] setting that the socket from
// systemd does not match. The socket unit then sets the path, group and mode, and the
// warning explains to an admin who changed only the TOML file why nothing changed.
func warnSocketMismatch(cfg *policy.Config, path string) {
	if path != cfg.Socket.Path {
		slog.Warn("the socket passed by systemd is not at socket.path; the daemon serves on systemd's socket, so set ListenStream= in sdspawner.socket to change it",
			"socket", path, "socket.path", cfg.Socket.Path)
	}
	info, err := os.Stat(path)
	if err != nil {
		slog.Warn("reading the mode and group of the socket passed by systemd failed", "socket", path, "err", err)
		return
	}
	if mode, err := cfg.SocketMode(); err == nil && info.Mode().Perm() != mode {
		slog.Warn("the mode of the socket passed by systemd differs from socket.mode; set SocketMode= in sdspawner.socket to change it",
			"socket", path, "mode", fmt.Sprintf("%04o", uint32(info.Mode().Perm())), "socket.mode", cfg.Socket.Mode)
	}
	stat, ok := info.Sys().(*syscall.Stat_t)
	if !ok || cfg.Socket.Group == "" {
		return
	}
	group := strconv.FormatUint(uint64(stat.Gid), 10)
	if found, err := user.LookupGroupId(group); err == nil {
		group = found.Name
	}
	if group != cfg.Socket.Group {
		slog.Warn("the group of the socket passed by systemd differs from socket.group; set SocketGroup= in sdspawner.socket to change it",
			"socket", path, "group", group, "socket.group", cfg.Socket.Group)
	}
}

// notifySystemd sends state, such as daemon.SdNotifyReady, to systemd when the daemon
// runs as a Type=notify service, and does nothing otherwise.
func notifySystemd(state string) {
	sent, err := daemon.SdNotify(false, state)
	switch {
	case err != nil:
		slog.Warn("notifying systemd failed", "state", state, "notify_socket", os.Getenv("NOTIFY_SOCKET"), "err", err)
	case sent:
		slog.Debug("notified systemd", "state", state)
	}
}
