// Package api is the daemon's HTTP/JSON interface on its Unix socket: the wire types,
// the request decoding and the handlers. docs/api.md describes it for clients.
package api

// Version is the API version, the first element of every path.
const Version = 1

// StartRequest is the body of POST /v1/servers/start: one server's options as the hub
// has them, with templates not yet expanded.
type StartRequest struct {
	User string `json:"user"`
	// UserID is JupyterHub's id of the user, expanded for {USERID}.
	UserID              *int64            `json:"user_id"`
	Server              string            `json:"server"`
	Cmd                 []string          `json:"cmd"`
	Env                 map[string]string `json:"env"`
	UsernameTemplate    string            `json:"username_template"`
	UnitNameTemplate    string            `json:"unit_name_template"`
	UserWorkingDir      *string           `json:"user_workingdir"`
	DefaultShell        string            `json:"default_shell"`
	ExtraPaths          []string          `json:"extra_paths"`
	MemLimit            *int64            `json:"mem_limit"`
	CPULimit            *float64          `json:"cpu_limit"`
	IsolateTmp          bool              `json:"isolate_tmp"`
	IsolateDevices      bool              `json:"isolate_devices"`
	DisableUserSudo     *bool             `json:"disable_user_sudo"`
	ReadOnlyPaths       []string          `json:"readonly_paths"`
	ReadWritePaths      []string          `json:"readwrite_paths"`
	DynamicUsers        bool              `json:"dynamic_users"`
	Slice               *string           `json:"slice"`
	UnitExtraProperties map[string]any    `json:"unit_extra_properties"`
}

// StopRequest is the body of POST /v1/servers/stop.
type StopRequest struct {
	User   string `json:"user"`
	Server string `json:"server"`
	// Now skips the grace period: every process of the unit gets SIGKILL at once.
	Now bool `json:"now"`
}

// Status describes one server; start, stop and status all return it.
type Status struct {
	User        string `json:"user"`
	Server      string `json:"server"`
	Unit        string `json:"unit"`
	Exists      bool   `json:"exists"`
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	MainPID     uint32 `json:"main_pid"`
	// ExitStatus is the main process's exit status once the unit has stopped, else nil.
	ExitStatus *int32 `json:"exit_status"`
	UnixUser   string `json:"unix_user"`
	UID        uint32 `json:"uid"`
	// Warnings are problems that did not stop the request, for the hub's log.
	Warnings []string `json:"warnings,omitempty"`
}

// VersionResponse is the body of GET /v1/version.
type VersionResponse struct {
	Version string `json:"version"`
	API     int    `json:"api"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}
