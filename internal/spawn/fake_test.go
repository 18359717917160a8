package spawn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sdspawner/sdspawner/internal/account"
	"github.com/sdspawner/sdspawner/internal/envfile"
	"github.com/sdspawner/sdspawner/internal/journal"
	"github.com/sdspawner/sdspawner/internal/policy"
	"github.com/sdspawner/sdspawner/internal/systemd"
)

// fakeSystemd keeps units in memory. Real systemd is exercised by the tests in the
// throwaway systemd bed; this fake covers the daemon's own decisions.
type fakeSystemd struct {
	mu    sync.Mutex
	units map[string]*systemd.UnitState
	props map[string][]systemd.Property
	// startErr, when set, makes StartTransient load the unit as failed and return it.
	startErr error
	// startDelay makes StartTransient wait, to test concurrent starts.
	startDelay time.Duration
	calls      []string
	// stateCalls counts State calls, to check that status requests use the cache.
	stateCalls int
}

func newFakeSystemd() *fakeSystemd {
	return &fakeSystemd{units: map[string]*systemd.UnitState{}, props: map[string][]systemd.Property{}}
}

func (f *fakeSystemd) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeSystemd) StartTransient(ctx context.Context, name string, props []systemd.Property) error {
	f.record("start " + name)
	time.Sleep(f.startDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.units[name]; ok && u.Loaded() {
		return dbus.Error{Name: "org.freedesktop.systemd1.UnitExists"}
	}
	state := &systemd.UnitState{Name: name, LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 42}
	for _, p := range props {
		switch p.Name {
		case "LogExtraFields":
			for _, field := range p.Value.Value().([][]byte) {
				state.LogExtraFields = append(state.LogExtraFields, string(field))
			}
		case "User":
			state.User = p.Value.Value().(string)
		}
	}
	f.props[name] = props
	if f.startErr != nil {
		state.ActiveState, state.SubState, state.Result = "failed", "failed", "exit-code"
		state.ExecMainCode, state.ExecMainStatus, state.MainPID = 1, 203, 0
		f.units[name] = state
		return f.startErr
	}
	f.units[name] = state
	return nil
}

func (f *fakeSystemd) Stop(ctx context.Context, name string) error {
	f.record("stop " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.units[name]; ok && u.ActiveState != "failed" {
		delete(f.units, name)
	}
	return nil
}

func (f *fakeSystemd) Kill(ctx context.Context, name string) error {
	f.record("kill " + name)
	return nil
}

func (f *fakeSystemd) ResetFailed(ctx context.Context, name string) error {
	f.record("reset " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	if u, ok := f.units[name]; ok && (u.ActiveState == "failed" || u.ActiveState == "inactive") {
		delete(f.units, name)
	}
	return nil
}

func (f *fakeSystemd) State(ctx context.Context, name string) (systemd.UnitState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stateCalls++
	if u, ok := f.units[name]; ok {
		return *u, nil
	}
	return systemd.UnitState{Name: name, LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, nil
}

// RuntimeState returns State without the fields that are fixed at creation, as the
// real one does.
func (f *fakeSystemd) RuntimeState(ctx context.Context, name string) (systemd.UnitState, error) {
	state, err := f.State(ctx, name)
	state.User, state.LogExtraFields, state.FragmentPath, state.DropInPaths = "", nil, "", nil
	state.MemoryMax, state.CPUQuotaPerSecUSec = 0, 0
	state.ControlGroup, state.InvocationID, state.ActiveEnterTimestamp = "", "", 0
	return state, err
}

// UnitProperty returns the cgroup and the invocation id of a loaded unit.
func (f *fakeSystemd) UnitProperty(ctx context.Context, name, iface, property string) (any, error) {
	f.record("get " + property + " " + name)
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.units[name]
	if !ok {
		return nil, fmt.Errorf("unit %s is not loaded", name)
	}
	switch property {
	case "ControlGroup":
		return u.ControlGroup, nil
	case "InvocationID":
		id, err := hex.DecodeString(u.InvocationID)
		return id, err
	}
	return nil, fmt.Errorf("the fake has no property %s", property)
}

// LoadState returns the same as State; the fake has no unit files.
func (f *fakeSystemd) LoadState(ctx context.Context, name string) (systemd.UnitState, error) {
	return f.State(ctx, name)
}

// PropertyTypes returns a few of systemd 252's service property types.
func (f *fakeSystemd) PropertyTypes(ctx context.Context) (map[string]string, error) {
	return map[string]string{
		"CPUWeight": "t", "MemoryHigh": "t", "TimeoutStopUSec": "t", "ReadOnlyPaths": "as",
		"ProtectSystem": "s", "NoNewPrivileges": "b", "Nice": "i", "User": "s", "ExecStart": "a(sasb)",
		"BindPaths": "a(ssbt)", "BindReadOnlyPaths": "a(ssbt)", "CPUQuotaPerSecUSec": "t", "StateDirectory": "as", "IPAddressDeny": "a(iayu)",
	}, nil
}

func (f *fakeSystemd) prop(unit, name string) (any, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.props[unit] {
		if p.Name == name {
			return p.Value.Value(), true
		}
	}
	return nil, false
}

// fakeFS returns file information for a fixed set of paths.
type fakeFS map[string]fakeFile

type fakeFile struct {
	mode     fs.FileMode
	uid, gid uint32
}

type fakeInfo struct {
	name string
	file fakeFile
}

func (i fakeInfo) Name() string       { return i.name }
func (i fakeInfo) Size() int64        { return 0 }
func (i fakeInfo) Mode() fs.FileMode  { return i.file.mode }
func (i fakeInfo) ModTime() time.Time { return time.Time{} }
func (i fakeInfo) IsDir() bool        { return i.file.mode.IsDir() }
func (i fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: i.file.uid, Gid: i.file.gid} }

func (f fakeFS) stat(path string) (fs.FileInfo, error) {
	file, ok := f[path]
	if !ok {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: fs.ErrNotExist}
	}
	return fakeInfo{name: path, file: file}, nil
}

var testAccounts = map[string]account.Account{
	"alice":  {Name: "alice", UID: 1001, GID: 1001, Group: "alice", Home: "/home/alice", GIDs: []uint32{1001, 2000}},
	"bob":    {Name: "bob", UID: 1002, GID: 1002, Group: "bob", Home: "/home/bob"},
	"root":   {Name: "root", UID: 0, GID: 0, Group: "root", Home: "/root"},
	"daemon": {Name: "daemon", UID: 1, GID: 1, Group: "daemon", Home: "/usr/sbin"},
}

func lookupTestAccount(name string) (account.Account, error) {
	if acct, ok := testAccounts[name]; ok {
		return acct, nil
	}
	return account.Account{}, fmt.Errorf("%w: %q", account.ErrNotFound, name)
}

// newTestService returns a service on a fake systemd, with an environment file store in
// a temporary directory and a file system holding the usual server binaries.
func newTestService(t testing.TB) (*Service, *fakeSystemd, string) {
	t.Helper()
	cfg := policy.Default()
	cfg.Accounts.MinUID = 1000
	dir := t.TempDir() + "/env"
	envs, err := envfile.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sd := newFakeSystemd()
	s := New(&cfg, sd, envs)
	s.lookupUser = lookupTestAccount
	s.tailJournal = testJournal.tail
	s.lastUnit = func(string, string, string, string, string) (string, error) { return "", nil }
	plainDir := fakeFile{mode: fs.ModeDir | 0o755}
	files := fakeFS{
		"/": plainDir, "/usr": plainDir, "/usr/local": plainDir, "/usr/local/bin": plainDir, "/usr/bin": plainDir,
		"/opt": plainDir, "/opt/conda": plainDir, "/opt/conda/bin": plainDir, "/srv": plainDir, "/srv/data": plainDir,
		"/tmp":                                  {mode: fs.ModeDir | fs.ModeSticky | 0o777},
		"/home":                                 plainDir,
		"/home/alice":                           {mode: fs.ModeDir | 0o755, uid: 1001, gid: 1001},
		"/home/alice/bin":                       {mode: fs.ModeDir | 0o755, uid: 1001, gid: 1001},
		"/home/alice/bin/jupyterhub-singleuser": {mode: 0o755, uid: 1001, gid: 1001},
		"/usr/local/bin/jupyterhub-singleuser":  {mode: 0o755},
		"/opt/conda/bin/jupyterhub-singleuser":  {mode: 0o755},
		"/opt/shared":                           {mode: fs.ModeDir | 0o775, gid: 2000},
		"/opt/shared/jupyterhub-singleuser":     {mode: 0o755},
		"/usr/bin/notexec":                      {mode: 0o644},
	}
	s.stat = files.stat
	s.resolve = func(path string) (string, error) {
		if path == "/srv/link-to-etc" {
			return "/etc", nil
		}
		return path, nil
	}
	return s, sd, dir
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// sdState returns the state of a running unit, as systemd reports it.
func sdState(unit string) systemd.UnitState {
	return systemd.UnitState{Name: unit, LoadState: "loaded", ActiveState: "active", SubState: "running", MainPID: 42}
}

// fakeJournal returns the same lines for every unit: what a Python server prints when
// a module is missing.
type fakeJournal struct{}

var testJournal fakeJournal

func (fakeJournal) tail(q journal.Query) ([]journal.Entry, error) {
	return []journal.Entry{
		{PID: 1, Message: "Started " + q.Unit + "."},
		{PID: 4242, Message: "Traceback (most recent call last):"},
		{PID: 4242, Message: `  File "<string>", line 1, in <module>`},
		{PID: 4242, Message: "ModuleNotFoundError: No module named 'jupyterhub_missing'"},
		{PID: 1, Message: q.Unit + ": Main process exited, code=exited, status=1/FAILURE"},
	}, nil
}
