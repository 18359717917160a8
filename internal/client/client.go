// Package client calls the daemon's API over its Unix socket, for the admin CLI.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/sdspawner/sdspawner/internal/api"
)

// Client is an API client bound to one socket.
type Client struct {
	socket string
	http   *http.Client
}

// New returns a client for the daemon listening on socket.
func New(socket string) *Client {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{socket: socket, http: &http.Client{Transport: transport, Timeout: 2 * time.Minute}}
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
		return fmt.Errorf("sdspawner daemon not reachable at %s: %w; is `sdspawner serve` running?", c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxBodyBytes))
	if err != nil {
		return fmt.Errorf("read response of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		apiErr := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(data, &apiErr.ErrorResponse) != nil || apiErr.ErrorResponse.Error == "" {
			apiErr.ErrorResponse.Error = fmt.Sprintf("HTTP %d from %s: %s", resp.StatusCode, path, bytes.TrimSpace(data))
		}
		return apiErr
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response of %s: %w", path, err)
	}
	return nil
}
