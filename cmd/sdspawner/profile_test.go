package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProfilingSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pprof.sock")
	closeProfiling, err := listenProfiling(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeProfiling()

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("profiling socket mode = %o, want 600", info.Mode().Perm())
	}

	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", path)
		},
	}}
	resp, err := client.Get("http://localhost/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := http.StatusForbidden
	if os.Geteuid() == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		t.Errorf("GET cmdline as uid %d: HTTP %d, want %d", os.Geteuid(), resp.StatusCode, want)
	}
}

func TestProfilingSocketRejectsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenProfiling(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listenProfiling on a file: %v, want a 'not a socket' error", err)
	}
}

func TestProfilingSocketRejectsRelativePath(t *testing.T) {
	if _, err := listenProfiling("pprof.sock"); err == nil {
		t.Error("listenProfiling accepted a relative path")
	}
}
