package spawn

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sdspawner/sdspawner/internal/account"
	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/systemd"
	"github.com/sdspawner/sdspawner/internal/unitname"
)

func startRequest(user string) *api.StartRequest {
	return &api.StartRequest{
		User: user,
		Cmd:  []string{"jupyterhub-singleuser", "--debug", "$HOME"},
		Env:  map[string]string{"JUPYTERHUB_API_TOKEN": "tok-secret", "JUPYTERHUB_USER": user},
	}
}

func ptr[T any](v T) *T { return &v }

func TestStartBuildsUnit(t *testing.T) {
	s, sd, dir := newTestService(t)
	req := startRequest("alice")
	req.MemLimit = ptr(int64(1610612736))
	req.CPULimit = ptr(0.5)
	req.IsolateTmp = true
	req.ExtraPaths = []string{"/opt/conda/bin"}

	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	if st.Unit != unit || st.ActiveState != "active" || st.UnixUser != "alice" || st.UID != 1001 {
		t.Errorf("status = %+v", st)
	}
	checks := map[string]any{
		"User":               "alice",
		"Group":              "alice",
		"WorkingDirectory":   "/home/alice",
		"MemoryMax":          uint64(1610612736),
		"CPUQuotaPerSecUSec": uint64(500000),
		"CPUWeight":          uint64(100),
		"OOMPolicy":          "continue",
		"PrivateTmp":         true,
		"PrivateDevices":     false,
		"NoNewPrivileges":    true,
		"Type":               "exec",
	}
	for name, want := range checks {
		got, ok := sd.prop(unit, name)
		if !ok {
			t.Errorf("property %s not set", name)
			continue
		}
		if got != want {
			t.Errorf("property %s = %#v, want %#v", name, got, want)
		}
	}
	if _, ok := sd.prop(unit, "Environment"); ok {
		t.Error("Environment= is set; the token must only go through the environment file")
	}

	exec, _ := sd.prop(unit, "ExecStartEx")
	cmd := exec.([]systemd.ExecCommandEx)[0]
	if cmd.Path != "/opt/conda/bin/jupyterhub-singleuser" {
		t.Errorf("ExecStartEx path = %q, want the extra_paths binary first", cmd.Path)
	}
	if len(cmd.Flags) != 1 || cmd.Flags[0] != "no-env-expand" {
		t.Errorf("ExecStartEx flags = %q, want no-env-expand", cmd.Flags)
	}
	if strings.Join(cmd.Argv, " ") != "/opt/conda/bin/jupyterhub-singleuser --debug $HOME" {
		t.Errorf("ExecStartEx argv = %q", cmd.Argv)
	}

	data, err := os.ReadFile(dir + "/" + unit + ".env")
	if err != nil {
		t.Fatal(err)
	}
	env := string(data)
	for _, want := range []string{
		`JUPYTERHUB_API_TOKEN="tok-secret"`,
		`MEM_LIMIT="1610612736"`,
		`CPU_LIMIT="0.5"`,
		`PATH="/opt/conda/bin:` + DefaultPath + `"`,
		`SHELL="/bin/bash"`,
	} {
		if !strings.Contains(env, want) {
			t.Errorf("environment file lacks %s:\n%s", want, env)
		}
	}
}

func TestStartRejectsLeaveNothing(t *testing.T) {
	cases := []struct {
		name string
		edit func(*api.StartRequest)
		want string
	}{
		{"root", func(r *api.StartRequest) { r.UsernameTemplate = "root" }, "uid 0"},
		{"system account", func(r *api.StartRequest) { r.UsernameTemplate = "daemon" }, "below accounts.min_uid"},
		{"unknown unix user", func(r *api.StartRequest) { r.User = "nobody-here" }, `"nobody-here"`},
		{"missing command", func(r *api.StartRequest) { r.Cmd = []string{"nope"} }, `command "nope" not found on the server's PATH`},
		{"relative command", func(r *api.StartRequest) { r.Cmd = []string{"bin/x"} }, "relative path"},
		{"not executable", func(r *api.StartRequest) { r.Cmd = []string{"/usr/bin/notexec"} }, "not an executable"},
		{"empty cmd", func(r *api.StartRequest) { r.Cmd = nil }, "cmd is missing"},
		{"zero memory", func(r *api.StartRequest) { r.MemLimit = ptr(int64(0)) }, "mem_limit 0 is invalid"},
		{"tiny cpu", func(r *api.StartRequest) { r.CPULimit = ptr(0.001) }, "cpu_limit 0.001 is invalid"},
		{"negative cpu", func(r *api.StartRequest) { r.CPULimit = ptr(-1.0) }, "cpu_limit -1 is invalid"},
		{"bad env name", func(r *api.StartRequest) { r.Env["BAD-NAME"] = "x" }, `"BAD-NAME" is invalid`},
		{"missing readonly path", func(r *api.StartRequest) { r.ReadOnlyPaths = []string{"/srv/missing"} }, `"/srv/missing" does not exist`},
		{"path traversal", func(r *api.StartRequest) {
			r.User = ".."
			r.UsernameTemplate = "alice"
			r.UserWorkingDir = ptr("/home/{USERNAME}")
		}, "must not contain '/'"},
		{"relative workdir", func(r *api.StartRequest) { r.UserWorkingDir = ptr("work") }, "not a clean absolute path"},
		{"control char user", func(r *api.StartRequest) { r.User = "al\nice" }, "control character"},
		{"bad unit template", func(r *api.StartRequest) { r.UnitNameTemplate = "jupyter {USERNAME}" }, "invalid unit name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, sd, dir := newTestService(t)
			req := startRequest("alice")
			tc.edit(req)
			_, err := s.Start(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want an error containing %q", err, tc.want)
			}
			if KindOf(err) != KindInvalid && KindOf(err) != KindForbidden {
				t.Errorf("kind = %v, want invalid or forbidden", KindOf(err))
			}
			if len(sd.units) != 0 || len(sd.calls) != 0 {
				t.Errorf("systemd was called: %v", sd.calls)
			}
			if files := listDir(t, dir); len(files) != 0 {
				t.Errorf("files left behind: %v", files)
			}
		})
	}
}

func TestStartOptionalPathAccepted(t *testing.T) {
	s, sd, _ := newTestService(t)
	req := startRequest("alice")
	req.ReadOnlyPaths = []string{"-/srv/missing", "/srv/data"}
	if _, err := s.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got, _ := sd.prop("jupyter-alice-singleuser.service", "ReadOnlyPaths")
	if strings.Join(got.([]string), ",") != "-/srv/missing,/srv/data" {
		t.Errorf("ReadOnlyPaths = %q", got)
	}
}

func TestStartFailureCleansUp(t *testing.T) {
	s, sd, dir := newTestService(t)
	sd.startErr = systemd.ErrJobFailed
	_, err := s.Start(context.Background(), startRequest("alice"))
	if err == nil || !strings.Contains(err.Error(), "exited with status 203") || !strings.Contains(err.Error(), "No module named 'jupyterhub_missing'") {
		t.Fatalf("Start = %v, want the exit status and the log's last lines in the error", err)
	}
	if strings.Contains(err.Error(), "Main process exited") {
		t.Errorf("Start = %v, want systemd's own messages left out of the log lines", err)
	}
	if len(sd.units) != 0 {
		t.Errorf("units left: %v", sd.units)
	}
	if files := listDir(t, dir); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
	if _, err := s.Status(context.Background(), "alice", ""); KindOf(err) != KindNotFound {
		t.Errorf("Status after failed start = %v, want not found", err)
	}
}

func TestStartRefusesForeignUnit(t *testing.T) {
	s, sd, dir := newTestService(t)
	unit := "jupyter-alice-singleuser.service"
	sd.units[unit] = &systemd.UnitState{Name: unit, LoadState: "loaded", ActiveState: "active"}
	_, err := s.Start(context.Background(), startRequest("alice"))
	if KindOf(err) != KindConflict || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("Start = %v, want a conflict", err)
	}
	if sd.units[unit].ActiveState != "active" {
		t.Errorf("the foreign unit was touched: %v", sd.calls)
	}
	for _, call := range sd.calls {
		if !strings.HasPrefix(call, "start ") {
			t.Errorf("the foreign unit got %q", call)
		}
	}
	if files := listDir(t, dir); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
}

func TestStartResetsFailedUnit(t *testing.T) {
	s, sd, _ := newTestService(t)
	unit := "jupyter-alice-singleuser.service"
	sd.units[unit] = &systemd.UnitState{Name: unit, LoadState: "loaded", ActiveState: "failed",
		LogExtraFields: []string{"SDSPAWNER_MANAGED=1", "SDSPAWNER_USER=alice", "SDSPAWNER_SERVER="}}
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	want := []string{"start " + unit, "reset " + unit, "start " + unit}
	if strings.Join(sd.calls, ",") != strings.Join(want, ",") {
		t.Errorf("calls = %v, want %v", sd.calls, want)
	}
}

func TestConcurrentStartsYieldOneUnit(t *testing.T) {
	s, sd, _ := newTestService(t)
	sd.startDelay = 50 * time.Millisecond
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Start(context.Background(), startRequest("alice"))
		}()
	}
	wg.Wait()
	conflicts := 0
	for _, err := range errs {
		if KindOf(err) == KindConflict {
			conflicts++
		} else if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if conflicts != 1 {
		t.Errorf("conflicts = %d, want exactly 1 (errors %v)", conflicts, errs)
	}
	if len(sd.units) != 1 {
		t.Errorf("units = %d, want 1", len(sd.units))
	}
}

func TestStopRemovesEverything(t *testing.T) {
	s, sd, dir := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(context.Background(), "alice", "", true); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sd.calls[1], "kill ") {
		t.Errorf("stop with now did not kill first: %v", sd.calls)
	}
	if len(sd.units) != 0 {
		t.Errorf("units left: %v", sd.units)
	}
	if files := listDir(t, dir); len(files) != 0 {
		t.Errorf("files left behind: %v", files)
	}
	st, err := s.Stop(context.Background(), "alice", "", false)
	if err != nil || st.Exists {
		t.Errorf("second Stop = %+v, %v; want success with no unit", st, err)
	}
}

func TestRecoverRebuildsIndex(t *testing.T) {
	s, sd, dir := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/jupyter-gone-singleuser.service.env", []byte("A=\"1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	restarted := New(s.cfg, sd, s.envs)
	restarted.lookupUser = lookupTestAccount
	restarted.tailJournal = testJournal.tail
	if err := restarted.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := restarted.Status(context.Background(), "alice", "")
	if err != nil || st.ActiveState != "active" || st.UID != 1001 {
		t.Errorf("Status after recovery = %+v, %v", st, err)
	}
	files := listDir(t, dir)
	if len(files) != 1 || files[0] != "jupyter-alice-singleuser.service.env" {
		t.Errorf("files after recovery = %v, want only alice's", files)
	}
}

func TestRecoverKeepsQueuedStart(t *testing.T) {
	s, sd, dir := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	// A daemon killed while systemd's start job still waits leaves the unit inactive
	// with the job queued.
	u := sd.units[unit]
	u.ActiveState, u.SubState, u.MainPID, u.JobID = "inactive", "dead", 0, 7

	restarted := New(s.cfg, sd, s.envs)
	restarted.lookupUser = lookupTestAccount
	if err := restarted.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted.HandleEvent(context.Background(), systemd.Event{Resync: true, Reason: "test"})
	if files := listDir(t, dir); len(files) != 1 || files[0] != unit+".env" {
		t.Errorf("files while the start job is queued = %v, want %s.env", files, unit)
	}

	u.ActiveState, u.SubState, u.JobID = "failed", "failed", 0
	restarted.HandleEvent(context.Background(), systemd.Event{Resync: true, Reason: "test"})
	if files := listDir(t, dir); len(files) != 0 {
		t.Errorf("files after the start failed = %v, want none", files)
	}
}

func TestStatusReportsExitStatus(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	u := sd.units[unit]
	u.ActiveState, u.ExecMainCode, u.ExecMainStatus = "failed", 2, 9

	// Until systemd sends an event, the cached state is reported without a D-Bus call.
	before := sd.stateCalls
	st, err := s.Status(context.Background(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != "active" || sd.stateCalls != before {
		t.Errorf("status = %s with %d State calls, want the cached active state and none", st.ActiveState, sd.stateCalls-before)
	}

	s.HandleEvent(context.Background(), systemd.Event{Unit: unit, Changed: map[string]dbus.Variant{"ActiveState": dbus.MakeVariant("failed")}})
	st, err = s.Status(context.Background(), "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if st.ExitStatus == nil || *st.ExitStatus != 137 {
		t.Errorf("exit status = %v, want 137 for SIGKILL", st.ExitStatus)
	}
	if _, err := os.Stat(s.envs.Path(unit)); !os.IsNotExist(err) {
		t.Errorf("the environment file of the ended server is still there: %v", err)
	}
}

func TestEventDuringStartKeepsEnvFile(t *testing.T) {
	s, sd, _ := newTestService(t)
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	s.busy[key{user: "alice"}] = true
	sd.units[unit].ActiveState = "inactive"
	s.HandleEvent(context.Background(), systemd.Event{Unit: unit, Removed: true})
	if _, err := os.Stat(s.envs.Path(unit)); err != nil {
		t.Errorf("an event during a start removed the environment file: %v", err)
	}
	delete(s.busy, key{user: "alice"})

	s.HandleEvent(context.Background(), systemd.Event{Resync: true})
	if _, err := os.Stat(s.envs.Path(unit)); !os.IsNotExist(err) {
		t.Errorf("a resync did not clean up the ended server: %v", err)
	}
	s.HandleEvent(context.Background(), systemd.Event{Unit: "unrelated.service", Removed: true})
}

func TestStartExtraProperties(t *testing.T) {
	s, sd, _ := newTestService(t)
	req := startRequest("alice")
	extra := map[string]any{
		"CPUWeight":      "50",
		"MemoryHigh":     "1G",
		"TimeoutStopSec": "20s",
		"ReadOnlyPaths":  []any{"/srv/{USERNAME}", "/data/{literal}"},
		"ProtectSystem":  "strict",
	}
	req.UnitExtraProperties = extra
	if _, err := s.Start(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	unit := "jupyter-alice-singleuser.service"
	want := map[string]any{
		"CPUWeight":       uint64(50),
		"MemoryHigh":      uint64(1 << 30),
		"TimeoutStopUSec": uint64(20e6),
		"ProtectSystem":   "strict",
	}
	for name, value := range want {
		if got, _ := sd.prop(unit, name); got != value {
			t.Errorf("%s = %#v, want %#v", name, got, value)
		}
	}
	paths, _ := sd.prop(unit, "ReadOnlyPaths")
	if strings.Join(paths.([]string), ",") != "/srv/alice,/data/{literal}" {
		t.Errorf("ReadOnlyPaths = %q", paths)
	}
	count := 0
	for _, p := range sd.props[unit] {
		if p.Name == "CPUWeight" {
			count++
		}
	}
	if count != 1 {
		t.Errorf("CPUWeight set %d times, want the extra value to replace the default", count)
	}
	if list, ok := extra["ReadOnlyPaths"].([]any); !ok || list[0] != "/srv/{USERNAME}" {
		t.Errorf("the request's map was changed: %v", extra["ReadOnlyPaths"])
	}
}

func TestStartExtraPropertiesRejected(t *testing.T) {
	cases := map[string]struct {
		value any
		want  string
	}{
		"User":            {"root", "may not be set from the hub"},
		"ExecStartPre":    {"/bin/true", "may not be set from the hub"},
		"BindPaths":       {"/etc:/x", "may not be set from the hub"},
		"IPAddressDeny":   {"any", "not in the daemon's allowed properties"},
		"NoSuchProperty":  {"1", "not a property of systemd services"},
		"CPUWeight":       {"heavy", `value "heavy" is not a whole number`},
		"NoNewPrivileges": {"no", "use the disable_user_sudo option"},
		"Nice":            {"-10", "negative value"},
		"MemoryHigh":      {42.0, "give a string or a list of strings"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, sd, dir := newTestService(t)
			req := startRequest("alice")
			req.UnitExtraProperties = map[string]any{name: tc.value}
			_, err := s.Start(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want an error containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
			if len(sd.calls) != 0 || len(listDir(t, dir)) != 0 {
				t.Errorf("something was left behind: calls %v, files %v", sd.calls, listDir(t, dir))
			}
		})
	}
}

func TestStartDynamicUser(t *testing.T) {
	s, sd, _ := newTestService(t)
	req := startRequest("ann@example.org")
	req.DynamicUsers = true
	req.UserWorkingDir = ptr("/ignored")
	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	unit := st.Unit
	if got, _ := sd.prop(unit, "DynamicUser"); got != true {
		t.Errorf("DynamicUser = %v", got)
	}
	if got, _ := sd.prop(unit, "StateDirectory"); strings.Join(got.([]string), ",") != `ann\x40example.org` {
		t.Errorf("StateDirectory = %q", got)
	}
	if got, _ := sd.prop(unit, "WorkingDirectory"); got != `/var/lib/ann\x40example.org` {
		t.Errorf("WorkingDirectory = %q", got)
	}
	if got, _ := sd.prop(unit, "User"); got != unitname.DynamicUserName("ann@example.org") {
		t.Errorf("User = %v, want the derived dynamic user name", got)
	}
	data, _ := os.ReadFile(s.envs.Path(unit))
	if !strings.Contains(string(data), `HOME="/var/lib/ann\\x40example.org"`) {
		t.Errorf("HOME not set to the state directory:\n%s", data)
	}

	s.cfg.Accounts.DynamicUsers = false
	req.User = "other"
	if _, err := s.Start(context.Background(), req); KindOf(err) != KindForbidden {
		t.Errorf("dynamic user with dynamic_users disabled: %v", err)
	}
}

func TestStartExpandsCommandAndWarnsOnSlice(t *testing.T) {
	s, sd, _ := newTestService(t)
	req := startRequest("alice")
	req.Cmd = []string{"jupyterhub-singleuser", "--notebook-dir=/home/{USERNAME}/{USERID}"}
	req.UserID = ptr(int64(7))
	req.Slice = ptr("jupyterhub-users")
	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	exec, _ := sd.prop(st.Unit, "ExecStartEx")
	if got := exec.([]systemd.ExecCommandEx)[0].Argv[1]; got != "--notebook-dir=/home/alice/7" {
		t.Errorf("argv[1] = %q", got)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "jupyterhub-users.slice has no unit file") {
		t.Errorf("warnings = %q", st.Warnings)
	}
	if got, _ := sd.prop(st.Unit, "Slice"); got != "jupyterhub-users.slice" {
		t.Errorf("Slice = %v", got)
	}

	req.User = "bob"
	req.Slice = ptr("../../etc.slice")
	if _, err := s.Start(context.Background(), req); err == nil || !strings.Contains(err.Error(), "slice") {
		t.Errorf("bad slice: %v", err)
	}
}

func TestStartAdminPolicyRules(t *testing.T) {
	cases := []struct {
		name   string
		policy func(*Service)
		edit   func(*api.StartRequest)
		want   string
	}{
		{"mem cap", func(s *Service) { s.cfg.Limits.MaxMemLimit = 1 << 30 },
			func(r *api.StartRequest) { r.MemLimit = ptr(int64(2 << 30)) }, "above the daemon's cap limits.max_mem_limit 1073741824"},
		{"cpu cap", func(s *Service) { s.cfg.Limits.MaxCPULimit = 2 },
			func(r *api.StartRequest) { r.CPULimit = ptr(4.0) }, "cpu_limit 4 is above the daemon's cap limits.max_cpu_limit 2"},
		{"LD_PRELOAD", nil, func(r *api.StartRequest) { r.Env["LD_PRELOAD"] = "/tmp/x.so" }, "LD_PRELOAD may not be set"},
		{"NOTIFY_SOCKET", nil, func(r *api.StartRequest) { r.Env["NOTIFY_SOCKET"] = "/run/x" }, "NOTIFY_SOCKET may not be set"},
		{"SYSTEMD_ prefix", nil, func(r *api.StartRequest) { r.Env["SYSTEMD_LOG_LEVEL"] = "debug" }, "SYSTEMD_LOG_LEVEL may not be set"},
		{"configured deny", func(s *Service) { s.cfg.Environment.Deny = []string{"HTTP_PROXY"} },
			func(r *api.StartRequest) { r.Env["HTTP_PROXY"] = "x" }, "HTTP_PROXY may not be set"},
		{"workdir outside prefixes", nil, func(r *api.StartRequest) { r.UserWorkingDir = ptr("/etc") }, "user_workingdir /etc is not under"},
		{"workdir symlink out", nil, func(r *api.StartRequest) { r.UserWorkingDir = ptr("/srv/link-to-etc") }, "resolved to /etc"},
		{"readwrite outside", nil, func(r *api.StartRequest) { r.ReadWritePaths = []string{"-/etc/ssh"} }, "readwrite_paths /etc/ssh is not under"},
		{"user-owned command", nil, func(r *api.StartRequest) { r.Cmd = []string{"/home/alice/bin/jupyterhub-singleuser"} }, "writable by the unix user"},
		{"group-writable dir", nil, func(r *api.StartRequest) { r.Cmd = []string{"/opt/shared/jupyterhub-singleuser"} }, "/opt/shared is writable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, sd, dir := newTestService(t)
			if tc.policy != nil {
				tc.policy(s)
			}
			req := startRequest("alice")
			tc.edit(req)
			_, err := s.Start(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want an error containing %q", err, tc.want)
			}
			if KindOf(err) != KindForbidden {
				t.Errorf("kind = %v, want forbidden", KindOf(err))
			}
			if len(sd.calls) != 0 || len(listDir(t, dir)) != 0 {
				t.Errorf("something was left behind: calls %v, files %v", sd.calls, listDir(t, dir))
			}
		})
	}
}

func TestStartServerCaps(t *testing.T) {
	s, _, _ := newTestService(t)
	s.cfg.Limits.MaxServersPerUser = 1
	s.cfg.Limits.MaxServers = 2
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Fatal(err)
	}
	named := startRequest("alice")
	named.Server = "gpu"
	_, err := s.Start(context.Background(), named)
	if err == nil || !strings.Contains(err.Error(), "max_servers_per_user") {
		t.Errorf("second server of alice: %v", err)
	}
	if _, err := s.Start(context.Background(), startRequest("bob")); err != nil {
		t.Fatal(err)
	}
	testAccounts["carol"] = account.Account{Name: "carol", UID: 1003, GID: 1003, Group: "carol", Home: "/home/alice"}
	defer delete(testAccounts, "carol")
	_, err = s.Start(context.Background(), startRequest("carol"))
	if err == nil || !strings.Contains(err.Error(), "limits.max_servers") {
		t.Errorf("third server in total: %v", err)
	}
	// Restarting a running server does not count it twice.
	if _, err := s.Start(context.Background(), startRequest("alice")); err != nil {
		t.Errorf("restart of alice's server: %v", err)
	}
}

func TestStartSiteProperties(t *testing.T) {
	s, sd, _ := newTestService(t)
	s.cfg.SiteProperties = map[string]any{
		"BindReadOnlyPaths": []any{"/srv/datasets", "-/opt/{USERNAME}-tools:/opt/tools"},
		"CPUWeight":         "200",
	}
	req := startRequest("alice")
	req.UnitExtraProperties = map[string]any{"CPUWeight": "50"}
	st, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := sd.prop(st.Unit, "CPUWeight"); got != uint64(200) {
		t.Errorf("CPUWeight = %v, want the admin's 200 to win", got)
	}
	binds, ok := sd.prop(st.Unit, "BindReadOnlyPaths")
	if !ok || fmt.Sprint(binds) != "[{/srv/datasets /srv/datasets false 16384} {/opt/alice-tools /opt/tools true 16384}]" {
		t.Errorf("BindReadOnlyPaths = %v", binds)
	}

	s.cfg.SiteProperties = map[string]any{"User": "root"}
	req.User = "bob"
	if _, err := s.Start(context.Background(), req); err == nil || !strings.Contains(err.Error(), "set by sdspawner itself") {
		t.Errorf("site User= gave %v", err)
	}
}

func TestStopDuringStartStopsNewServer(t *testing.T) {
	s, sd, dir := newTestService(t)
	sd.startDelay = 100 * time.Millisecond
	started := make(chan error, 1)
	go func() {
		_, err := s.Start(context.Background(), startRequest("alice"))
		started <- err
	}()
	time.Sleep(20 * time.Millisecond)
	st, err := s.Stop(context.Background(), "alice", "", false)
	if err != nil {
		t.Fatalf("Stop during a start = %v, want it to wait and succeed", err)
	}
	if err := <-started; err != nil {
		t.Fatalf("Start = %v", err)
	}
	if st.Unit != "jupyter-alice-singleuser.service" {
		t.Errorf("Stop returned %+v, want the unit the start created", st)
	}
	if len(sd.units) != 0 || len(listDir(t, dir)) != 0 {
		t.Errorf("left behind: units %v, files %v", sd.units, listDir(t, dir))
	}
}
