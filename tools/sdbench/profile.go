package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/client"
)

// profiler fetches profiles from the daemon's profiling socket (serve --pprof-socket).
type profiler struct {
	http *http.Client
	dir  string
}

func newProfiler(socket, dir string) *profiler {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		},
	}
	return &profiler{http: &http.Client{Transport: transport}, dir: dir}
}

// fetch saves the profile at path (such as "heap?gc=1") to the file name in p.dir.
func (p *profiler) fetch(ctx context.Context, path, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost/debug/pprof/"+path, nil)
	if err != nil {
		return err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("fetch profile %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("fetch profile %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	out, err := os.Create(filepath.Join(p.dir, name))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("save profile %s: %w", name, err)
	}
	return out.Close()
}

// cpuProfileSeconds is the length of each CPU profile. A sequential start takes
// 10 to 25 ms, so one profile covers a few hundred starts.
const cpuProfileSeconds = 5

// traceSeconds is the length of the execution trace of sequential starts.
const traceSeconds = 2

// profileStarts records the daemon's CPU profile while it starts servers: first one
// after the other until the profile ends, then n at once. Every server is stopped
// after its profile, outside the profiled time.
func profileStarts(ctx context.Context, c *client.Client, p *profiler, n int) error {
	profileDone := make(chan error, 1)
	go func() {
		profileDone <- p.fetch(ctx, fmt.Sprintf("profile?seconds=%d", cpuProfileSeconds), "cpu-start-sequential.pb.gz")
	}()
	started := 0
	deadline := time.Now().Add(cpuProfileSeconds * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Start(ctx, startRequest(started)); err != nil {
			return fmt.Errorf("start unit %d while profiling: %w", started, err)
		}
		started++
	}
	if err := <-profileDone; err != nil {
		return err
	}
	if err := stopAll(ctx, c, started); err != nil {
		return err
	}

	// An execution trace shows where a start waits, which a CPU profile does not.
	go func() {
		profileDone <- p.fetch(ctx, fmt.Sprintf("trace?seconds=%d", traceSeconds), "trace-start-sequential.out")
	}()
	started = 0
	deadline = time.Now().Add(traceSeconds * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Start(ctx, startRequest(started)); err != nil {
			return fmt.Errorf("start unit %d while tracing: %w", started, err)
		}
		started++
	}
	if err := <-profileDone; err != nil {
		return err
	}
	if err := stopAll(ctx, c, started); err != nil {
		return err
	}

	go func() {
		profileDone <- p.fetch(ctx, fmt.Sprintf("profile?seconds=%d", cpuProfileSeconds), "cpu-start-burst.pb.gz")
	}()
	if _, err := burst(ctx, "start burst while profiling", n, func(ctx context.Context, i int) error {
		_, err := c.Start(ctx, startRequest(i))
		return err
	}); err != nil {
		return err
	}
	if err := <-profileDone; err != nil {
		return err
	}
	return stopAll(ctx, c, n)
}

func stopAll(ctx context.Context, c *client.Client, n int) error {
	_, err := burst(ctx, "stop after profiling", n, func(ctx context.Context, i int) error {
		_, err := c.Stop(ctx, api.StopRequest{User: fmt.Sprintf("bench%d", i)})
		return err
	})
	return err
}
