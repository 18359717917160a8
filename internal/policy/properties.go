package policy

import (
	"fmt"
	"strings"
)

// neverAllowed lists the unit properties that the hub may never set through
// unit_extra_properties, whatever the configuration contains. Each one would let the hub
// run code as another user, gain privileges, read or write files it should not, or
// break sdspawner's own bookkeeping. Names are D-Bus property names; an entry ending
// in '*' matches every name with that prefix.
var neverAllowed = map[string]string{
	"Exec*":                  "sets the command that runs as the server's user or as root",
	"User":                   "changes the account the server runs as",
	"Group":                  "changes the group the server runs as",
	"SupplementaryGroups":    "adds groups to the server's user",
	"DynamicUser":            "is set through the dynamic_users option",
	"Environment":            "is readable by every local user over D-Bus; the environment goes through a root-only file",
	"EnvironmentFiles":       "reads files as root into the server's environment",
	"EnvironmentFile":        "reads files as root into the server's environment",
	"PassEnvironment":        "passes systemd's own environment to the server",
	"LoadCredential*":        "reads files as root into the server",
	"SetCredential*":         "puts secrets into unit properties",
	"ImportCredential":       "reads system credentials into the server",
	"Standard*":              "connects the server's input or output to files or sockets opened as root",
	"TTYPath":                "opens a terminal device as root",
	"BindPaths":              "mounts paths opened as root into the server",
	"BindReadOnlyPaths":      "mounts paths opened as root into the server",
	"RootDirectory":          "changes the server's root file system",
	"RootImage*":             "mounts an image as root",
	"MountImages":            "mounts images as root",
	"ExtensionImages":        "mounts images as root",
	"ExtensionDirectories":   "mounts directories as root",
	"Delegate*":              "hands cgroup control to the server",
	"AmbientCapabilities":    "gives capabilities to the server",
	"CapabilityBoundingSet":  "changes the capabilities the server may gain",
	"SecureBits":             "changes how capabilities are kept across exec",
	"DeviceAllow":            "opens device access",
	"DevicePolicy":           "opens device access",
	"CPUSchedulingPolicy":    "can give the server realtime scheduling",
	"CPUSchedulingPriority":  "can give the server realtime scheduling",
	"PAMName":                "runs a PAM session as root",
	"WorkingDirectory":       "is set through the user_workingdir option",
	"Slice":                  "is set through the slice option",
	"Type":                   "changes when sdspawner considers the server started",
	"LogExtraFields":         "carries sdspawner's marker of its own units",
	"KillMode":               "can leave the server's processes running after a stop",
	"SendSIGKILL":            "can leave the server's processes running after a stop",
	"RemainAfterExit":        "keeps a dead server looking active",
	"RuntimeDirectory":       "creates directories as root and gives them to the server's user",
	"StateDirectory":         "creates directories as root and gives them to the server's user",
	"CacheDirectory":         "creates directories as root and gives them to the server's user",
	"LogsDirectory":          "creates directories as root and gives them to the server's user",
	"ConfigurationDirectory": "creates directories as root and gives them to the server's user",
	"SELinuxContext":         "changes the server's security label",
	"AppArmorProfile":        "changes the server's security profile",
	"SmackProcessLabel":      "changes the server's security label",
	"NetworkNamespacePath":   "joins a network namespace opened as root",
	"IPCNamespacePath":       "joins an IPC namespace opened as root",
	"Personality":            "changes the kernel personality of the server",
}

// DefaultAllowedProperties are the properties the hub may set through
// unit_extra_properties unless the configuration lists others. They only limit,
// account or isolate the server; none of them grants anything.
var DefaultAllowedProperties = []string{
	"CPUWeight", "StartupCPUWeight", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "CPUAccounting",
	"MemoryMin", "MemoryLow", "MemoryHigh", "MemoryMax", "MemorySwapMax", "MemoryAccounting",
	"TasksMax", "TasksAccounting", "IOWeight", "StartupIOWeight", "IOAccounting",
	"TimeoutStopUSec", "RuntimeMaxUSec",
	"LimitNOFILE", "LimitNPROC", "LimitCORE", "LimitAS", "LimitDATA", "LimitSTACK", "LimitFSIZE",
	"UMask", "Nice", "OOMScoreAdjust", "OOMPolicy",
	"PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateUsers", "PrivateIPC", "NoNewPrivileges",
	"ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
	"ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
	"RestrictRealtime", "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "RemoveIPC",
	"ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths",
	"SyslogIdentifier", "LogLevelMax",
}

// neverAllowedReason returns why name may never be set, or "" when it may be.
func neverAllowedReason(name string) string {
	if reason, ok := neverAllowed[name]; ok {
		return reason
	}
	for pattern, reason := range neverAllowed {
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok && strings.HasPrefix(name, prefix) {
			return reason
		}
	}
	return ""
}

// CheckNeverAllowed returns an error when the property name, as written or as its D-Bus
// name, is on the never-allowed list. It is checked before anything else, so that a
// forbidden name is reported as forbidden even when this systemd does not know it.
func CheckNeverAllowed(name string) error {
	if reason := neverAllowedReason(name); reason != "" {
		if CheckSiteProperty(name, name) == nil {
			return fmt.Errorf("unit_extra_properties: %s may not be set from the hub, because it %s; an admin can set it for every server in site_properties of the daemon's configuration", name, reason)
		}
		return fmt.Errorf("unit_extra_properties: %s may not be set from the hub, because it %s", name, reason)
	}
	return nil
}

// CheckExtraProperty returns an error unless the hub may set the property dbusName
// (as the option named it, written) to the text values. The never-allowed list wins
// over the allow-list, and some properties are allowed only with safe values.
func (c *Config) CheckExtraProperty(written, dbusName string, values []string) error {
	if err := CheckNeverAllowed(dbusName); err != nil {
		return err
	}
	allowed := false
	for _, name := range c.allowedProperties() {
		if name == dbusName {
			allowed = true
			break
		}
	}
	if !allowed {
		return fmt.Errorf("unit_extra_properties: %s is not in the daemon's allowed properties; an admin can add it to properties.allow in the daemon's configuration", written)
	}
	for _, value := range values {
		value = strings.TrimSpace(value)
		switch dbusName {
		case "NoNewPrivileges":
			if v := strings.ToLower(value); v == "no" || v == "false" || v == "off" || v == "0" {
				return fmt.Errorf("unit_extra_properties: NoNewPrivileges=%s is not allowed here; use the disable_user_sudo option", value)
			}
		case "Nice", "OOMScoreAdjust":
			if strings.HasPrefix(value, "-") {
				return fmt.Errorf("unit_extra_properties: %s=%s is not allowed: a negative value raises the server's priority over other users", written, value)
			}
		}
	}
	return nil
}

func (c *Config) allowedProperties() []string {
	if len(c.Properties.Allow) > 0 {
		return c.Properties.Allow
	}
	return DefaultAllowedProperties
}

// reservedForDaemon are the properties that even the admin's site_properties may not
// set, because sdspawner sets them itself and relies on their values.
var reservedForDaemon = []string{
	"ExecStart", "ExecStartEx", "Type", "User", "Group", "DynamicUser", "EnvironmentFiles",
	"EnvironmentFile", "LogExtraFields", "WorkingDirectory", "RuntimeDirectory", "StateDirectory",
}

// CheckSiteProperty returns an error when the admin's site_properties sets a property
// that sdspawner must control itself.
func CheckSiteProperty(written, dbusName string) error {
	for _, name := range reservedForDaemon {
		if name == written || name == dbusName {
			return fmt.Errorf("site_properties: %s is set by sdspawner itself and cannot be set site-wide", written)
		}
	}
	return nil
}
