package policy

import (
	"fmt"
	"path/filepath"
	"strings"
)

// builtinEnvDeny are environment variables the hub may never set, because they change
// how the dynamic linker, systemd or socket activation treat the server's processes.
var builtinEnvDeny = []string{
	"LD_*", "NOTIFY_SOCKET", "SYSTEMD_*", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
	"INVOCATION_ID", "JOURNAL_STREAM", "CREDENTIALS_DIRECTORY", "MAINPID", "MANAGERPID",
	"WATCHDOG_PID", "WATCHDOG_USEC",
}

// CheckEnvName returns an error when the hub may not set the variable name.
func (c *Config) CheckEnvName(name string) error {
	for _, pattern := range append(builtinEnvDeny, c.Environment.Deny...) {
		prefix, isPrefix := strings.CutSuffix(pattern, "*")
		if name == pattern || isPrefix && strings.HasPrefix(name, prefix) {
			return fmt.Errorf("environment variable %s may not be set from the hub (it matches %s on the daemon's deny-list)", name, pattern)
		}
	}
	return nil
}

// CheckMemLimit returns an error when bytes is above limits.max_mem_limit.
func (c *Config) CheckMemLimit(bytes int64) error {
	if c.Limits.MaxMemLimit > 0 && uint64(bytes) > uint64(c.Limits.MaxMemLimit) {
		return fmt.Errorf("mem_limit %d (%s) is above the daemon's cap limits.max_mem_limit %d (%s); lower mem_limit or ask the admin to raise the cap",
			bytes, Size(bytes), uint64(c.Limits.MaxMemLimit), c.Limits.MaxMemLimit)
	}
	return nil
}

// CheckCPULimit returns an error when cpus is above limits.max_cpu_limit.
func (c *Config) CheckCPULimit(cpus float64) error {
	if c.Limits.MaxCPULimit > 0 && cpus > c.Limits.MaxCPULimit {
		return fmt.Errorf("cpu_limit %v is above the daemon's cap limits.max_cpu_limit %v; lower cpu_limit or ask the admin to raise the cap", cpus, c.Limits.MaxCPULimit)
	}
	return nil
}

// CheckServerCount returns an error when one more server would exceed
// limits.max_servers_per_user or limits.max_servers. userServers and allServers count
// the servers running now, not counting the one being started.
func (c *Config) CheckServerCount(user string, userServers, allServers int) error {
	if c.Limits.MaxServersPerUser > 0 && userServers >= c.Limits.MaxServersPerUser {
		return fmt.Errorf("user %q already runs %d servers, the daemon's cap limits.max_servers_per_user; stop one first", user, userServers)
	}
	if c.Limits.MaxServers > 0 && allServers >= c.Limits.MaxServers {
		return fmt.Errorf("%d servers are running, the daemon's cap limits.max_servers; try again when one has stopped", allServers)
	}
	return nil
}

// CheckPathPrefix returns an error unless resolved, a path with symlinks resolved, lies
// under one of paths.allowed_prefixes. option and written name the option and the path
// as the hub gave it, for the message.
func (c *Config) CheckPathPrefix(option, written, resolved string) error {
	for _, prefix := range c.Paths.AllowedPrefixes {
		if prefix == "/" || resolved == prefix || strings.HasPrefix(resolved, prefix+"/") {
			return nil
		}
	}
	shown := written
	if resolved != written {
		shown = fmt.Sprintf("%s (resolved to %s)", written, resolved)
	}
	return fmt.Errorf("%s %s is not under any of the daemon's paths.allowed_prefixes %v; use a directory under one of them, or ask the admin to add a prefix", option, shown, c.Paths.AllowedPrefixes)
}

// Clean reports whether path is absolute and already in filepath.Clean form, so it
// contains no "..", no "." and no doubled slashes.
func Clean(path string) bool {
	return filepath.IsAbs(path) && filepath.Clean(path) == path
}
