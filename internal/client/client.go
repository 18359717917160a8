// Package client calls the daemon's API over its Unix socket, for the admin CLI.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
)

// Client is an API client bound to one socket.
type Client struct {
	socket string
	http   *http.Client
	// stream has no overall timeout, for logs that are followed; its requests end
	// with their context.
	stream *http.Client
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{
		socket: socket,
		http:   &http.Client{Transport: transport, Timeout: 2 * time.Minute},
		stream: &http.Client{Transport: transport},
	}
}

// APIError is an error response from the daemon.
type APIError struct {
	Status int
	api.ErrorResponse
}

func (e *APIError) Error() string { return e.ErrorResponse.Error }

// Version returns the daemon's version.
func (c *Client) Version(ctx context.Context) (api.VersionResponse, error) {
	var out api.VersionResponse
	return out, c.do(ctx, http.MethodGet, "/v1/version", nil, &out)
}

// Status returns the status of one server.
func (c *Client) Status(ctx context.Context, user, server string) (api.Status, error) {
	var out api.Status
	query := url.Values{"user": {user}, "server": {server}}
	return out, c.do(ctx, http.MethodGet, "/v1/servers/status?"+query.Encode(), nil, &out)
}

// Stop stops one server.
func (c *Client) Stop(ctx context.Context, req api.StopRequest) (api.Status, error) {
	var out api.Status
	return out, c.do(ctx, http.MethodPost, "/v1/servers/stop", req, &out)
}

// Start starts one server.
func (c *Client) Start(ctx context.Context, req *api.StartRequest) (api.Status, error) {
	var out api.Status
	return out, c.do(ctx, http.MethodPost, "/v1/servers/start", req, &out)
}

// List returns every server in the daemon's index, with its usage.
func (c *Client) List(ctx context.Context) (api.ServerList, error) {
	var out api.ServerList
	return out, c.do(ctx, http.MethodGet, "/v1/servers", nil, &out)
}

// Events returns the progress events of a server's latest start after the event
// numbered after, waiting up to wait for one.
func (c *Client) Events(ctx context.Context, user, server string, after int, wait time.Duration) (api.EventsResponse, error) {
	var out api.EventsResponse
	query := url.Values{"user": {user}, "server": {server}, "after": {strconv.Itoa(after)},
		"wait": {strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)}}
	return out, c.do(ctx, http.MethodGet, "/v1/servers/events?"+query.Encode(), nil, &out)
}

// Logs calls emit with the last lines of a server's journal and, with follow, with
// each new line until ctx ends.
func (c *Client) Logs(ctx context.Context, user, server string, lines int, follow bool, emit func(api.LogEntry) error) error {
	query := url.Values{"user": {user}, "server": {server}, "lines": {strconv.Itoa(lines)}, "follow": {strconv.FormatBool(follow)}}
	path := "/v1/servers/logs?" + query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sdspawner"+path, nil)
	if err != nil {
		return fmt.Errorf("build request to %s: %w", path, err)
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, api.MaxBodyBytes))
		return responseError(resp.StatusCode, path, data)
	}
	decoder := json.NewDecoder(resp.Body)
	for {
		var line struct {
			api.LogEntry
			Error string `json:"error"`
		}
		err := decoder.Decode(&line)
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log lines of %s: %w", path, err)
		}
		if line.Error != "" {
			return fmt.Errorf("the daemon stopped sending log lines: %s", line.Error)
		}
		if err := emit(line.LogEntry); err != nil {
			return err
		}
	}
}

// unreachable explains a failed connection to the socket with the likely fix.
func (c *Client) unreachable(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("permission denied on the sdspawner socket %s: run the command as root, or as a member of the socket's group (see ls -l %s): %w", c.socket, c.socket, err)
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("no sdspawner socket at %s: start the daemon (systemctl start sdspawner.socket), or give its socket with -socket: %w", c.socket, err)
	default:
		return fmt.Errorf("sdspawner daemon not reachable at %s: %w; is `sdspawner serve` running?", c.socket, err)
	}
}

// responseError turns a non-200 response into an *APIError.
func responseError(status int, path string, data []byte) error {
	apiErr := &APIError{Status: status}
	if json.Unmarshal(data, &apiErr.ErrorResponse) != nil || apiErr.ErrorResponse.Error == "" {
		apiErr.ErrorResponse.Error = fmt.Sprintf("HTTP %d from %s: %s", status, path, bytes.TrimSpace(data))
	}
	return apiErr
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request to %s: %w", path, err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sdspawner"+path, reader)
	if err != nil {
		return fmt.Errorf("build request to %s: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxBodyBytes))
	if err != nil {
		return fmt.Errorf("read response of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return responseError(resp.StatusCode, path, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s: %w", path, err)
	}
	return nil
}
