// Package peercred reads the kernel's credentials of the process at the other end of a
// Unix socket connection (SO_PEERCRED). The kernel records them at connect time, so a
// caller cannot forge them.
package peercred

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/sdspawner/sdspawner/internal/policy"
)

// Get returns the credentials of conn's peer. conn must be a *net.UnixConn.
func Get(conn net.Conn) (policy.Caller, error) {
	unixConn, ok := conn.(*net.UnixConn)
	if !ok {
		return policy.Caller{}, fmt.Errorf("read peer credentials: connection from %s is not a Unix socket", conn.RemoteAddr())
	}
	raw, err := unixConn.SyscallConn()
	if err != nil {
		return policy.Caller{}, fmt.Errorf("read peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = credErr
	}
	if err != nil {
		return policy.Caller{}, fmt.Errorf("read peer credentials (SO_PEERCRED): %w", err)
	}
	return policy.Caller{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}
