//go:build bedtest

// These tests need a real systemd as PID 1 and root. They run inside the throwaway
// systemd bed (make test builds them with -tags bedtest and runs them there).
package systemd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdspawner/sdspawner/internal/envfile"
)

func connect(t *testing.T) (*Conn, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	conn, err := Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn, ctx
}

func uniqueUnit(t *testing.T) string {
	name := fmt.Sprintf("sdspawner-bedtest-%s-%d.service", strings.ToLower(t.Name()), time.Now().UnixNano())
	return strings.ReplaceAll(name, "/", "-")
}

func TestBedVersion(t *testing.T) {
	conn, ctx := connect(t)
	version, err := conn.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("systemd %s", version)
	if version == "" {
		t.Error("empty version")
	}
}

func TestBedPropertiesReadBack(t *testing.T) {
	conn, ctx := connect(t)
	unit := uniqueUnit(t)
	props := []Property{
		PropType("exec"),
		PropExecStartEx([]string{"/bin/sleep", "300"}),
		PropUser("nobody"),
		PropGroup("nogroup"),
		PropWorkingDirectory("/tmp"),
		PropMemoryAccounting(true),
		PropMemoryMax(1610612736),
		PropCPUQuotaPerSecUSec(500000),
		PropCPUWeight(100),
		PropOOMPolicy("continue"),
		PropPrivateTmp(true),
		PropPrivateDevices(true),
		PropNoNewPrivileges(true),
		PropRuntimeDirectory("sdspawner-bedtest"),
		PropRuntimeDirectoryMode(0o700),
		PropLogExtraFields("SDSPAWNER_USER=a b", "SDSPAWNER_SERVER="),
		PropReadOnlyPaths([]string{"/srv", "-/does-not-exist"}),
	}
	if err := conn.StartTransient(ctx, unit, props); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Stop(context.Background(), unit); _ = conn.ResetFailed(context.Background(), unit) })

	want := map[string]any{
		"User":               "nobody",
		"MemoryMax":          uint64(1610612736),
		"CPUQuotaPerSecUSec": uint64(500000),
		"CPUWeight":          uint64(100),
		"OOMPolicy":          "continue",
		"PrivateTmp":         true,
		"PrivateDevices":     true,
		"NoNewPrivileges":    true,
		"WorkingDirectory":   "/tmp",
	}
	for name, value := range want {
		got, err := conn.ServiceProperty(ctx, unit, name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(value) {
			t.Errorf("%s = %v, want %v", name, got, value)
		}
	}
	state, err := conn.State(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if state.ActiveState != "active" || state.MainPID == 0 {
		t.Errorf("state = %+v", state)
	}
	if user, _ := state.Field("SDSPAWNER_USER"); user != "a b" {
		t.Errorf("LogExtraFields = %q", state.LogExtraFields)
	}

	if err := conn.Stop(ctx, unit); err != nil {
		t.Fatal(err)
	}
	state, err = conn.State(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if state.Loaded() && state.ActiveState == "active" {
		t.Errorf("after Stop: %+v", state)
	}
}

// TestBedEnvironmentRoundTrip writes hostile values through an environment file and
// checks that the process gets exactly those values, and that "$HOME" in argv stays literal.
func TestBedEnvironmentRoundTrip(t *testing.T) {
	conn, ctx := connect(t)
	dir := t.TempDir()
	store, err := envfile.Open(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"QUOTES":    `a"b'c`,
		"BACKSLASH": `x\y\\z\`,
		"DOLLAR":    "$HOME ${PATH} $(id) `id`",
		"NEWLINE":   "line1\nline2\n",
		"TAB":       "a\tb",
		"SPACES":    "  lead and trail  ",
		"UNICODE":   "Grüße 日本",
		"EMPTY":     "",
		"HASH":      "#not a comment ;nor this",
		"EQUALS":    "a=b=c",
	}
	// A backslash, as in escaped unit names, must not break systemd's glob of the path.
	unit := strings.Replace(uniqueUnit(t), "bedtest-", `bedtest-a\x40b-`, 1)
	envPath, err := store.Write(unit, values)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	script := `for n in QUOTES BACKSLASH DOLLAR NEWLINE TAB SPACES UNICODE EMPTY HASH EQUALS; do printenv "$n" > "$1/$n" || echo missing > "$1/$n"; done; printf %s "$2" > "$1/ARG"`
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	props := []Property{
		PropType("oneshot"),
		PropExecStartEx([]string{"/bin/sh", "-c", script, "sh", out, "$HOME"}),
		PropEnvironmentFile(envPath),
	}
	if err := conn.StartTransient(ctx, unit, props); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.ResetFailed(context.Background(), unit) })
	for name, want := range values {
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		// printenv adds one newline.
		if got := strings.TrimSuffix(string(data), "\n"); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	arg, _ := os.ReadFile(filepath.Join(out, "ARG"))
	if string(arg) != "$HOME" {
		t.Errorf("argv $HOME = %q, want it unexpanded", arg)
	}
}

func TestBedFailedExec(t *testing.T) {
	conn, ctx := connect(t)
	unit := uniqueUnit(t)
	err := conn.StartTransient(ctx, unit, []Property{PropType("exec"), PropExecStartEx([]string{"/nonexistent/binary"})})
	t.Cleanup(func() { _ = conn.ResetFailed(context.Background(), unit) })
	if err == nil {
		t.Fatal("start of a missing binary succeeded")
	}
	state, err := conn.State(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if state.ActiveState != "failed" {
		t.Errorf("state = %+v, want failed", state)
	}
	if err := conn.ResetFailed(ctx, unit); err != nil {
		t.Fatal(err)
	}
	state, _ = conn.State(ctx, unit)
	if state.Loaded() {
		t.Errorf("after ResetFailed the unit is still loaded: %+v", state)
	}
}

func TestBedUnitExistsError(t *testing.T) {
	conn, ctx := connect(t)
	unit := uniqueUnit(t)
	props := []Property{PropType("exec"), PropExecStartEx([]string{"/bin/sleep", "60"})}
	if err := conn.StartTransient(ctx, unit, props); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Stop(context.Background(), unit) })
	err := conn.StartTransient(ctx, unit, props)
	if !IsUnitExists(err) {
		t.Errorf("second start = %v, want UnitExists", err)
	}
	if err := conn.Stop(ctx, "sdspawner-never-existed.service"); err != nil {
		t.Errorf("Stop of a missing unit = %v, want nil", err)
	}
}

func TestBedPropertyTypes(t *testing.T) {
	conn, ctx := connect(t)
	types, err := conn.PropertyTypes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"MemoryMax": "t", "CPUWeight": "t", "ReadOnlyPaths": "as", "PrivateTmp": "b", "User": "s", "Nice": "i", "TimeoutStopUSec": "t"}
	for name, signature := range want {
		if types[name] != signature {
			t.Errorf("%s has type %q, want %q", name, types[name], signature)
		}
	}
	if len(types) < 200 {
		t.Errorf("only %d properties introspected", len(types))
	}
	state, err := conn.State(ctx, "sdspawner-introspection-probe.service")
	if err != nil {
		t.Fatal(err)
	}
	if state.LoadState != "not-found" {
		t.Errorf("the introspection probe unit exists: %+v", state)
	}
}

func TestBedRuntimeStateMatchesState(t *testing.T) {
	conn, ctx := connect(t)
	running := uniqueUnit(t)
	if err := conn.StartTransient(ctx, running, []Property{PropType("exec"), PropExecStartEx([]string{"/bin/sleep", "300"})}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Stop(context.Background(), running)
		_ = conn.ResetFailed(context.Background(), running)
	})
	exited := "exit3-" + uniqueUnit(t)
	// A process that exits at once can end before systemd sees the exec, and then the
	// start job fails; either way the unit ends up failed, which is what is compared.
	err := conn.StartTransient(ctx, exited, []Property{PropType("exec"), PropExecStartEx([]string{"/bin/sh", "-c", "exit 3"})})
	if err != nil && !errors.Is(err, ErrJobFailed) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.ResetFailed(context.Background(), exited) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		state, err := conn.State(ctx, exited)
		if err != nil {
			t.Fatal(err)
		}
		if state.ActiveState == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	for _, unit := range []string{running, exited, "sdspawner-bedtest-missing.service"} {
		full, err := conn.State(ctx, unit)
		if err != nil {
			t.Fatal(err)
		}
		runtime, err := conn.RuntimeState(ctx, unit)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.Seq == 0 {
			t.Errorf("RuntimeState(%s) has no Seq", unit)
		}
		want := UnitState{
			Name: unit, LoadState: full.LoadState, ActiveState: full.ActiveState, SubState: full.SubState,
			Result: full.Result, MainPID: full.MainPID, ExecMainCode: full.ExecMainCode, ExecMainStatus: full.ExecMainStatus,
			Seq: runtime.Seq,
		}
		if fmt.Sprint(runtime) != fmt.Sprint(want) {
			t.Errorf("RuntimeState(%s) = %+v, want %+v", unit, runtime, want)
		}
	}
	exitedState, _ := conn.RuntimeState(ctx, exited)
	if exitedState.ActiveState != "failed" || exitedState.ExecMainCode != 1 || exitedState.ExecMainStatus != 3 {
		t.Errorf("RuntimeState of a unit that exited with 3 = %+v", exitedState)
	}
}
