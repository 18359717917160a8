// Package policy holds the admin's rules for the daemon: who may call it and which
// servers it may start. The rules come from a TOML file owned by root.
package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sdspawner/sdspawner/internal/account"
)

// DefaultPath is the configuration file the daemon reads when no -config is given.
const DefaultPath = "/etc/sdspawner/config.toml"

// Config is the daemon's configuration file.
type Config struct {
	// Socket sets where and how the API socket is created.
	Socket SocketConfig `toml:"socket"`
	// Callers lists who may use the API.
	Callers CallersConfig `toml:"callers"`
	// Accounts limits which unix accounts servers may run as.
	Accounts AccountsConfig `toml:"accounts"`
	// Properties limits what the hub may set through unit_extra_properties.
	Properties PropertiesConfig `toml:"properties"`
	// Limits caps what one request may ask for.
	Limits LimitsConfig `toml:"limits"`
	// Paths limits the directories a server may use.
	Paths PathsConfig `toml:"paths"`
	// Environment limits the environment variables the hub may set.
	Environment EnvironmentConfig `toml:"environment"`
	// Servers sets how servers are run.
	Servers ServersConfig `toml:"servers"`
	// Metrics sets the optional Prometheus listener.
	Metrics MetricsConfig `toml:"metrics"`
	// Log sets what the daemon logs.
	Log LogConfig `toml:"log"`
	// SiteProperties are unit properties the admin sets on every server's unit, such as
	// a site-wide BindReadOnlyPaths. Values are strings or lists of strings, written as
	// in unit files. They are applied last, so they win over the hub's
	// unit_extra_properties, and only the properties sdspawner's own bookkeeping needs
	// are refused here.
	SiteProperties map[string]any `toml:"site_properties"`
	// EnvDir is the root-only directory for the servers' environment files.
	EnvDir string `toml:"env_dir"`
}

// MetricsConfig is the [metrics] table.
type MetricsConfig struct {
	// Listen is the TCP address, such as "127.0.0.1:9464", where the daemon serves
	// Prometheus metrics on /metrics. Empty, the default, serves none. The metrics name
	// every user with a server, so bind it where only the monitoring system can reach.
	Listen string `toml:"listen"`
}

// ServersConfig is the [servers] table.
type ServersConfig struct {
	// StopTimeout is how long a stop waits after SIGTERM before systemd sends SIGKILL,
	// as a duration such as "30s". The hub's stop(now=True) skips it.
	StopTimeout Duration `toml:"stop_timeout"`
}

// LogConfig is the [log] table.
type LogConfig struct {
	// Level is the lowest level logged: "debug", "info", "warn" or "error". The
	// daemon's --log-level and --debug flags override it.
	Level string `toml:"level"`
}

// LogLevel returns log.level as a slog level.
func (c *Config) LogLevel() (slog.Level, error) {
	return ParseLogLevel(c.Log.Level)
}

// ParseLogLevel parses one of the level names "debug", "info", "warn" and "error", in
// any case. Unlike slog.Level's UnmarshalText it rejects offsets such as "info+2",
// which journald's priorities cannot show.
func ParseLogLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q is invalid: use debug, info, warn or error", name)
}

// LimitsConfig is the [limits] table. Zero means no cap. A request above a cap is
// rejected with the cap in the message, never silently lowered.
type LimitsConfig struct {
	// MaxMemLimit is the largest mem_limit, as a size such as "8G" (K, M, G, T are
	// powers of 1024).
	MaxMemLimit Size `toml:"max_mem_limit"`
	// MaxCPULimit is the largest cpu_limit, in CPUs.
	MaxCPULimit float64 `toml:"max_cpu_limit"`
	// MaxServersPerUser is the most servers one JupyterHub user may run at once.
	MaxServersPerUser int `toml:"max_servers_per_user"`
	// MaxServers is the most servers that may run at once in total.
	MaxServers int `toml:"max_servers"`
}

// PathsConfig is the [paths] table.
type PathsConfig struct {
	// AllowedPrefixes are the directories under which working directories and
	// readwrite_paths must lie, after symlinks are resolved.
	AllowedPrefixes []string `toml:"allowed_prefixes"`
}

// EnvironmentConfig is the [environment] table.
type EnvironmentConfig struct {
	// Deny lists variable names the hub may not set, in addition to the built-in list.
	// A name ending in '*' matches every name with that prefix.
	Deny []string `toml:"deny"`
}

// PropertiesConfig is the [properties] table.
type PropertiesConfig struct {
	// Allow lists the D-Bus property names the hub may set through
	// unit_extra_properties. Empty means DefaultAllowedProperties. Properties on the
	// never-allowed list stay rejected even when listed here.
	Allow []string `toml:"allow"`
}

// SocketConfig is the [socket] table.
type SocketConfig struct {
	// Path is the Unix socket's file name.
	Path string `toml:"path"`
	// Mode is the socket's permission bits, as an octal string such as "0660".
	Mode string `toml:"mode"`
	// Group owns the socket, so that its members (the hub's user) can connect. Empty
	// keeps root's group.
	Group string `toml:"group"`
}

// CallersConfig is the [callers] table. A caller is allowed when its uid is in UIDs or
// it is a member of one of Groups. The uid and gid come from SO_PEERCRED.
type CallersConfig struct {
	// UIDs are user ids allowed to call.
	UIDs []uint32 `toml:"uids"`
	// Groups are group names whose members may call.
	Groups []string `toml:"groups"`
}

// AccountsConfig is the [accounts] table.
type AccountsConfig struct {
	// MinUID is the smallest uid a server may run as. Zero means UID_MIN from
	// /etc/login.defs, or 1000. Root is never allowed, whatever the value.
	MinUID uint32 `toml:"min_uid"`
	// DynamicUsers allows servers with dynamic_users, which run as a uid that systemd
	// allocates (DynamicUser=yes). Default true.
	DynamicUsers bool `toml:"dynamic_users"`
	// RequiredGroup, when set, is a group that every account a server runs as must be a
	// member of, such as "jupyterhub-users".
	RequiredGroup string `toml:"required_group"`
}

// Default returns the configuration used when there is no file: the socket at
// /run/sdspawner/sdspawner.sock, mode 0660, group jupyterhub, and root and members of
// the jupyterhub group as callers, which fits a hub running as the user jupyterhub.
func Default() Config {
	return Config{
		Socket: SocketConfig{
			Path:  "/run/sdspawner/sdspawner.sock",
			Mode:  "0660",
			Group: "jupyterhub",
		},
		Callers: CallersConfig{
			UIDs:   []uint32{0},
			Groups: []string{"jupyterhub"},
		},
		Accounts: AccountsConfig{DynamicUsers: true},
		Servers:  ServersConfig{StopTimeout: Duration(30 * time.Second)},
		Log:      LogConfig{Level: "info"},
		Paths: PathsConfig{AllowedPrefixes: []string{
			"/home", "/srv", "/data", "/mnt", "/media", "/opt", "/scratch", "/tmp", "/var/lib", "/var/tmp",
		}},
		EnvDir: "/run/sdspawner/env",
	}
}

// Load reads the configuration file at path on top of Default. A missing file at the
// default path gives the defaults. A missing file named explicitly is an error, because
// the admin expects it to be used.
func Load(path string, explicit bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return cfg, cfg.finish()
	}
	if err != nil {
		return Config{}, fmt.Errorf("read configuration %s: %w", path, err)
	}
	meta, err := toml.Decode(string(data), &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("configuration %s: %w", path, err)
	}
	if undecoded := meta.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, key := range undecoded {
			keys[i] = key.String()
		}
		return Config{}, fmt.Errorf("configuration %s: unknown key %s; see docs/config.md for the valid keys", path, strings.Join(keys, ", "))
	}
	if err := cfg.finish(); err != nil {
		return Config{}, fmt.Errorf("configuration %s: %w", path, err)
	}
	return cfg, nil
}

// finish checks the values and fills in those that come from the system.
func (c *Config) finish() error {
	if !filepath.IsAbs(c.Socket.Path) {
		return fmt.Errorf("socket.path %q is invalid: it must be an absolute path", c.Socket.Path)
	}
	if _, err := c.SocketMode(); err != nil {
		return err
	}
	if !filepath.IsAbs(c.EnvDir) || filepath.Clean(c.EnvDir) != c.EnvDir {
		return fmt.Errorf("env_dir %q is invalid: it must be a clean absolute path", c.EnvDir)
	}
	if c.Metrics.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Metrics.Listen); err != nil || port == "" {
			return fmt.Errorf("metrics.listen %q is invalid: write host:port, such as \"127.0.0.1:9464\", or leave it empty to serve no metrics", c.Metrics.Listen)
		}
	}
	if _, err := c.LogLevel(); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	if c.Servers.StopTimeout <= 0 {
		return fmt.Errorf("servers.stop_timeout %s is invalid: give a positive duration such as \"30s\"", time.Duration(c.Servers.StopTimeout))
	}
	for name, value := range map[string]float64{
		"limits.max_cpu_limit":        c.Limits.MaxCPULimit,
		"limits.max_servers_per_user": float64(c.Limits.MaxServersPerUser),
		"limits.max_servers":          float64(c.Limits.MaxServers),
	} {
		if value < 0 {
			return fmt.Errorf("%s %v is invalid: caps must not be negative; use 0 for no cap", name, value)
		}
	}
	if c.Limits.MaxMemLimit > 0 && c.Limits.MaxMemLimit < 1<<20 {
		return fmt.Errorf("limits.max_mem_limit %d is invalid: it is in bytes and below the smallest mem_limit of 1M; write a size such as \"8G\"", uint64(c.Limits.MaxMemLimit))
	}
	for _, name := range c.Properties.Allow {
		if err := CheckNeverAllowed(name); err != nil {
			return fmt.Errorf("properties.allow entry %q is invalid: %w", name, err)
		}
	}
	for name, value := range c.SiteProperties {
		if err := CheckSiteProperty(name, name); err != nil {
			return err
		}
		if !isTextValue(value) {
			return fmt.Errorf("site_properties.%s is %T: write a string or a list of strings, as in a unit file (\"100\", not 100)", name, value)
		}
	}
	for _, prefix := range c.Paths.AllowedPrefixes {
		if !filepath.IsAbs(prefix) || filepath.Clean(prefix) != prefix {
			return fmt.Errorf("paths.allowed_prefixes entry %q is invalid: it must be a clean absolute path", prefix)
		}
	}
	for _, name := range c.Environment.Deny {
		if strings.TrimSuffix(name, "*") == "" {
			return fmt.Errorf("environment.deny entry %q is invalid: give a variable name or a prefix followed by *", name)
		}
	}
	if c.Accounts.MinUID == 0 {
		minUID, err := account.UIDMin("/etc/login.defs")
		if err != nil {
			return fmt.Errorf("accounts.min_uid is not set and UID_MIN could not be read: %w", err)
		}
		c.Accounts.MinUID = minUID
	}
	return nil
}

// SocketMode returns socket.mode as permission bits.
func (c *Config) SocketMode() (fs.FileMode, error) {
	mode, err := strconv.ParseUint(c.Socket.Mode, 8, 32)
	if err != nil || mode > 0o777 {
		return 0, fmt.Errorf("socket.mode %q is invalid: write octal permission bits such as \"0660\"", c.Socket.Mode)
	}
	return fs.FileMode(mode), nil
}

// isTextValue reports whether value, decoded from TOML, is a string or a list of strings.
func isTextValue(value any) bool {
	switch v := value.(type) {
	case string:
		return true
	case []any:
		for _, item := range v {
			if _, ok := item.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}
