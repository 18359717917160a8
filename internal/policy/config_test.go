package policy

import (
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sdspawner/sdspawner/internal/account"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadRejectsUnknownKey(t *testing.T) {
	path := writeConfig(t, "[callers]\nuid = [0]\n")
	_, err := Load(path, true)
	if err == nil || !strings.Contains(err.Error(), "callers.uid") {
		t.Errorf("Load = %v, want an error naming callers.uid", err)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	cases := map[string]string{
		"[socket]\nmode = \"rw\"\n":            `socket.mode "rw"`,
		"[socket]\npath = \"relative\"\n":      `socket.path "relative"`,
		"env_dir = \"/run/../tmp\"\n":          `env_dir "/run/../tmp"`,
		"[accounts]\nmin_uid = \"many\"\n":     "min_uid",
		"[metrics]\nlisten = \"9464\"\n":       `metrics.listen "9464" is invalid: write host:port`,
		"[metrics]\nlisten = \"localhost:\"\n": `metrics.listen "localhost:"`,
		"[log]\nlevel = \"info+2\"\n":          `log.level: log level "info+2" is invalid`,
	}
	for text, want := range cases {
		_, err := Load(writeConfig(t, text), true)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: Load = %v, want an error containing %s", text, err, want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.toml")
	cfg, err := Load(missing, false)
	if err != nil {
		t.Fatalf("missing default file: %v", err)
	}
	if cfg.Socket.Path != "/run/sdspawner/sdspawner.sock" || cfg.Accounts.MinUID == 0 || !cfg.Accounts.DynamicUsers {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if _, err := Load(missing, true); err == nil {
		t.Error("a missing file named explicitly gave no error")
	}
}

func TestLogLevel(t *testing.T) {
	cases := map[string]slog.Level{
		"[log]\nlevel = \"DEBUG\"\n": slog.LevelDebug,
		"[log]\nlevel = \"warn\"\n":  slog.LevelWarn,
		"[log]\nlevel = \"error\"\n": slog.LevelError,
		"":                           slog.LevelInfo,
	}
	for text, want := range cases {
		cfg, err := Load(writeConfig(t, text), true)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if got, err := cfg.LogLevel(); err != nil || got != want {
			t.Errorf("%q: LogLevel = %v, %v, want %v", text, got, err, want)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	cfg, err := Load(writeConfig(t, "[callers]\nuids = [997]\ngroups = []\n[accounts]\nmin_uid = 2000\ndynamic_users = false\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Callers.UIDs) != 1 || cfg.Callers.UIDs[0] != 997 || len(cfg.Callers.Groups) != 0 {
		t.Errorf("callers = %+v", cfg.Callers)
	}
	if cfg.Accounts.MinUID != 2000 || cfg.Accounts.DynamicUsers {
		t.Errorf("accounts = %+v", cfg.Accounts)
	}
}

func TestLoadLimitsAndPaths(t *testing.T) {
	text := "[servers]\nstop_timeout = \"5s\"\n[limits]\nmax_mem_limit = \"1.5G\"\nmax_cpu_limit = 2.0\nmax_servers_per_user = 3\n" +
		"[paths]\nallowed_prefixes = [\"/home\", \"/data\"]\n[environment]\ndeny = [\"HTTP_*\"]\n"
	cfg, err := Load(writeConfig(t, text), true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxMemLimit != 1610612736 || cfg.Limits.MaxCPULimit != 2 || cfg.Limits.MaxServersPerUser != 3 {
		t.Errorf("limits = %+v", cfg.Limits)
	}
	if time.Duration(cfg.Servers.StopTimeout) != 5*time.Second {
		t.Errorf("stop_timeout = %v", time.Duration(cfg.Servers.StopTimeout))
	}
	if err := cfg.CheckEnvName("HTTP_PROXY"); err == nil {
		t.Error("HTTP_PROXY passed a deny prefix HTTP_*")
	}
	if err := cfg.CheckEnvName("LD_LIBRARY_PATH"); err == nil {
		t.Error("LD_LIBRARY_PATH passed the built-in deny-list")
	}
	if err := cfg.CheckEnvName("JUPYTERHUB_API_TOKEN"); err != nil {
		t.Error(err)
	}
	if err := cfg.CheckPathPrefix("user_workingdir", "/datasets", "/datasets"); err == nil {
		t.Error("/datasets passed as under /data")
	}
	if err := cfg.CheckPathPrefix("user_workingdir", "/data/x", "/data/x"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"[limits]\nmax_mem_limit = \"lots\"\n", "[paths]\nallowed_prefixes = [\"data\"]\n", "[limits]\nmax_servers = -1\n", "[limits]\nmax_mem_limit = 8\n", "[properties]\nallow = [\"ExecStart\"]\n",
		"[site_properties]\nCPUWeight = 100\n", "[site_properties]\nUser = \"root\"\n", "[servers]\nstop_timeout = \"soon\"\n", "[servers]\nstop_timeout = \"0s\"\n"} {
		if _, err := Load(writeConfig(t, bad), true); err == nil {
			t.Errorf("%q loaded without error", bad)
		}
	}
}

func TestCheckAccountRequiredGroup(t *testing.T) {
	cfg := Default()
	cfg.Accounts.MinUID = 1000
	root, err := user.LookupGroupId("0")
	if err != nil {
		t.Skip("no group with gid 0 on this machine")
	}
	cfg.Accounts.RequiredGroup = root.Name
	member := account.Account{Name: "alice", UID: 1001, GIDs: []uint32{1001, 0}}
	if err := cfg.CheckAccount(member); err != nil {
		t.Errorf("member of %s: %v", root.Name, err)
	}
	outsider := account.Account{Name: "bob", UID: 1002, GIDs: []uint32{1002}}
	err = cfg.CheckAccount(outsider)
	if err == nil || !strings.Contains(err.Error(), "accounts.required_group") {
		t.Errorf("outsider: %v, want an error naming accounts.required_group", err)
	}
	cfg.Accounts.RequiredGroup = "no-such-group-sdspawner"
	if err := cfg.CheckAccount(member); err == nil {
		t.Error("a missing required group gave no error")
	}
}

func TestSizeString(t *testing.T) {
	for size, want := range map[Size]string{0: "0", 512: "512", 1 << 20: "1M", 3 << 29: "1536M", 2 << 30: "2G", 1 << 40: "1T", 1536: "1536"} {
		if got := size.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", uint64(size), got, want)
		}
	}
}
