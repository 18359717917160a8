package client

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnreachableSocketMessages(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	_, err := New(missing).Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no sdspawner socket at "+missing) {
		t.Errorf("missing socket: %v", err)
	}

	if os.Geteuid() == 0 {
		t.Skip("root may connect to any socket, so the permission case cannot be set up")
	}
	closed := filepath.Join(dir, "closed.sock")
	listener, err := net.Listen("unix", closed)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	if err := os.Chmod(closed, 0); err != nil {
		t.Fatal(err)
	}
	_, err = New(closed).Version(context.Background())
	if err == nil || !strings.Contains(err.Error(), "permission denied on the sdspawner socket") {
		t.Errorf("socket without permission: %v", err)
	}
}
