package api

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/sdspawner/sdspawner/internal/policy"
)

// Listen creates the API socket that cfg describes: its directory with mode 0755 if
// missing, a stale socket file removed, then the socket with the configured mode and
// group. Anything other than a socket at that path is left alone and is an error.
func Listen(cfg *policy.Config) (net.Listener, error) {
	path := cfg.Socket.Path
	mode, err := cfg.SocketMode()
	if err != nil {
		return nil, err
	}
	gid := -1
	if cfg.Socket.Group != "" {
		group, err := user.LookupGroup(cfg.Socket.Group)
		if err != nil {
			return nil, fmt.Errorf("socket.group %q: %w; create the group or change socket.group", cfg.Socket.Group, err)
		}
		gid, err = strconv.Atoi(group.Gid)
		if err != nil {
			return nil, fmt.Errorf("socket.group %q has a non-numeric gid %q", cfg.Socket.Group, group.Gid)
		}
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket directory %s: %w", filepath.Dir(path), err)
	}
	if info, err := os.Lstat(path); err == nil {
		if info.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("socket path %s exists and is not a socket; remove it or change socket.path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("check socket path %s: %w", path, err)
	}

	// The umask keeps the socket closed to everyone but root between its creation and
	// the Chmod below.
	oldMask := syscall.Umask(0o177)
	listener, err := net.Listen("unix", path)
	syscall.Umask(oldMask)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		listener.Close()
		return nil, fmt.Errorf("set group of socket %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		listener.Close()
		return nil, fmt.Errorf("set mode of socket %s: %w", path, err)
	}
	return listener, nil
}
