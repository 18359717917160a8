package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// listenerFile returns a duplicate descriptor of a new listener on network and address,
// as systemd would pass it.
func listenerFile(t *testing.T, network, address string) *os.File {
	t.Helper()
	listener, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	file, err := listener.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	return file
}

func TestInheritedListenerUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	listener, err := inheritedListener([]*os.File{listenerFile(t, "unix", path)})
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	if got := listener.Addr().String(); got != path {
		t.Errorf("Addr = %q, want %q", got, path)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the inherited socket: %v", err)
	}
	conn.Close()
}

func TestInheritedListenerRejectsTCP(t *testing.T) {
	_, err := inheritedListener([]*os.File{listenerFile(t, "tcp", "127.0.0.1:0")})
	if err == nil || !strings.Contains(err.Error(), "only on a Unix socket") {
		t.Errorf("inheritedListener = %v, want an error about a Unix socket", err)
	}
}

func TestInheritedListenerRejectsTwoSockets(t *testing.T) {
	dir := t.TempDir()
	files := []*os.File{
		listenerFile(t, "unix", filepath.Join(dir, "a.sock")),
		listenerFile(t, "unix", filepath.Join(dir, "b.sock")),
	}
	_, err := inheritedListener(files)
	if err == nil || !strings.Contains(err.Error(), "passed 2 sockets") {
		t.Errorf("inheritedListener = %v, want an error naming 2 sockets", err)
	}
}
