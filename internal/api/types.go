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
	// IP and Port are where the server will listen. With a port, the daemon checks
	// after the start that the port accepts connections, and reports it as the
	// "ready" progress event. 0 skips the check.
	IP   string `json:"ip"`
	Port int    `json:"port"`
	// ReadyTimeout is how many seconds the daemon waits for the port; 0 is the
	// default of 300.
	ReadyTimeout float64 `json:"ready_timeout"`
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
	// Failure is the reason the server's last run failed: its exit status and the
	// last lines of its log. It is empty while the server runs and after a clean exit.
	Failure string `json:"failure,omitempty"`
	// Warnings are problems that did not stop the request, for the hub's log.
	Warnings []string `json:"warnings,omitempty"`
}

// Progress phases of a start, in the order they happen. Ready, Failed, Stopped and
// Timeout end a start's progress.
const (
	PhaseAccepted = "accepted"
	PhaseStarted  = "started"
	PhaseWaiting  = "waiting"
	PhaseReady    = "ready"
	PhaseFailed   = "failed"
	PhaseStopped  = "stopped"
	PhaseTimeout  = "timeout"
)

// Event is one step of a server's start, for the hub's progress bar.
type Event struct {
	// Seq numbers the events of one start from 1.
	Seq  int    `json:"seq"`
	Time string `json:"time"`
	// Phase is one of the Phase constants.
	Phase string `json:"phase"`
	// Progress is the percentage JupyterHub's progress bar shows.
	Progress int    `json:"progress"`
	Message  string `json:"message"`
}

// EventsResponse is the body of GET /v1/servers/events.
type EventsResponse struct {
	User   string  `json:"user"`
	Server string  `json:"server"`
	Unit   string  `json:"unit"`
	Events []Event `json:"events"`
	// Done is true once the start has reached a final phase.
	Done bool `json:"done"`
}

// ServerInfo is one line of GET /v1/servers: a server's status and its usage. Counters
// that the machine's cgroup layout does not provide are null.
type ServerInfo struct {
	Status
	// MemoryBytes is the memory in use, page cache included.
	MemoryBytes *uint64 `json:"memory_bytes"`
	// MemoryLimitBytes is the unit's MemoryMax, null when unlimited.
	MemoryLimitBytes *uint64 `json:"memory_limit_bytes"`
	// CPULimit is the unit's CPU quota in cores, null when unlimited.
	CPULimit *float64 `json:"cpu_limit"`
	// CPUSeconds is the CPU time used since the unit started.
	CPUSeconds *float64 `json:"cpu_seconds"`
	// CPUPercent is the recent CPU use, 100 per fully used core, over the time since
	// the daemon's previous sample.
	CPUPercent *float64 `json:"cpu_percent"`
	Tasks      *uint64  `json:"tasks"`
	// OOMKills counts the server's processes that the kernel killed for memory.
	OOMKills *uint64 `json:"oom_kills"`
	// StartedAt is when the unit became active, RFC 3339; empty if it never did.
	StartedAt     string   `json:"started_at,omitempty"`
	UptimeSeconds *float64 `json:"uptime_seconds"`
}

// ServerList is the body of GET /v1/servers.
type ServerList struct {
	Servers []ServerInfo `json:"servers"`
}

// LogEntry is one journal line of a server, as GET /v1/servers/logs streams it.
type LogEntry struct {
	Time       string `json:"time"`
	Priority   int    `json:"priority"`
	Identifier string `json:"identifier"`
	PID        int    `json:"pid"`
	Message    string `json:"message"`
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
