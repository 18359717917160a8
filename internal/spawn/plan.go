package spawn

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/sdspawner/sdspawner/internal/account"
	"github.com/sdspawner/sdspawner/internal/api"
	"github.com/sdspawner/sdspawner/internal/envfile"
	"github.com/sdspawner/sdspawner/internal/systemd"
	"github.com/sdspawner/sdspawner/internal/unitname"
)

// DefaultPath is the PATH of a server when the hub's environment has none, as JupyterHub
// 5.2 and later no longer pass the hub's PATH on. It is systemd's default for services.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// minMemLimit is the smallest mem_limit accepted. No Python server starts in less, and
// a tiny value is far more likely a unit mistake (MB meant, bytes written).
const minMemLimit = 1 << 20

// minCPULimit is the smallest cpu_limit accepted: 1% of one CPU. With systemd's default
// CPUQuotaPeriodSec=100ms it gives the kernel's minimum quota of 1 ms a period.
const minCPULimit = 0.01

// cpuQuotaStepUSec is the precision applied to cpu_limit: whole milliseconds of CPU time
// a second, so 0.0005 CPU of difference is rounded away.
const cpuQuotaStepUSec = 1000

// maxNameBytes bounds the user and server names, which JupyterHub keeps far shorter.
const maxNameBytes = 255

// plan is everything needed to create one server's unit.
type plan struct {
	unit     string
	acct     account.Account
	env      map[string]string
	argv     []string
	props    []systemd.Property
	warnings []string
	// ready is the address the server will listen on, nil to skip the readiness check.
	ready *readyTarget
}

// validateName returns an error unless name is usable as a user or server name in
// templates, unit names and journal fields.
func validateName(field, name string, required bool) error {
	if required && name == "" {
		return invalidf("%s is missing: every request names the JupyterHub user", field)
	}
	if len(name) > maxNameBytes {
		return invalidf("%s %q is longer than %d bytes", field, name, maxNameBytes)
	}
	if !utf8.ValidString(name) {
		return invalidf("%s %q is not valid UTF-8", field, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return invalidf("%s %q contains the control character %U", field, name, r)
		}
	}
	return nil
}

// expandPath expands a path template with raw values, and requires the result to be a
// clean absolute path. A value that contains '/' or is "." or ".." is rejected, so that
// a user name cannot climb out of the directory the admin wrote.
func expandPath(option, template string, vars unitname.Vars) (string, error) {
	for name, value := range map[string]string{"USERNAME": vars.UserName, "SERVERNAME": vars.ServerName} {
		if !unitname.Uses(template, name) {
			continue
		}
		if strings.ContainsRune(value, '/') || value == "." || value == ".." {
			return "", invalidf("%s %q cannot be expanded for the name %q: a name used in a path must not contain '/' or be '.' or '..'", option, template, value)
		}
	}
	path := unitname.Expand(template, vars, func(s string) string { return s })
	if strings.ContainsAny(path, "\x00\n") {
		return "", invalidf("%s %q expands to a path with a NUL or newline character", option, template)
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return "", invalidf("%s %q expands to %q, which is not a clean absolute path", option, template, path)
	}
	return path, nil
}

// expandPathList expands every entry of a path list option. A leading '-', systemd's mark
// for a path that may be missing, is kept. Any other path must exist now, so that a typo
// fails the start with the path named instead of a unit that fails to set up its mounts.
func (s *Service) expandPathList(option string, templates []string, vars unitname.Vars) ([]string, error) {
	paths := make([]string, 0, len(templates))
	for _, template := range templates {
		optional := strings.HasPrefix(template, "-")
		path, err := expandPath(option, strings.TrimPrefix(template, "-"), vars)
		if err != nil {
			return nil, err
		}
		if optional {
			paths = append(paths, "-"+path)
			continue
		}
		if _, err := s.stat(path); err != nil {
			return nil, invalidf("%s entry %q does not exist (%v): create it, or write it as %q to make it optional", option, path, err, "-"+path)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// resolveExecutable finds name on searchPath the way execvp would. systemd needs an
// absolute path in ExecStart, and resolving it here turns "not found" into an error
// naming the command and the PATH instead of a unit that fails at exec.
func (s *Service) resolveExecutable(name, searchPath string) (string, error) {
	if strings.Contains(name, "/") {
		if !filepath.IsAbs(name) {
			return "", invalidf("command %q is a relative path: give an absolute path or a bare name to look up on PATH", name)
		}
		if err := s.checkExecutable(name); err != nil {
			return "", err
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(searchPath) {
		if !filepath.IsAbs(dir) {
			continue
		}
		candidate := filepath.Join(dir, name)
		if s.checkExecutable(candidate) == nil {
			return candidate, nil
		}
	}
	return "", invalidf("command %q not found on the server's PATH %q: install it, or set extra_paths or cmd to where it is", name, searchPath)
}

func (s *Service) checkExecutable(path string) error {
	info, err := s.stat(path)
	if err != nil {
		return invalidf("command %q not found: %v", path, err)
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return invalidf("command %q is not an executable file", path)
	}
	return nil
}

// formatCPULimit writes cpu as Python's str(float) does, the form upstream
// SystemdSpawner puts in CPU_LIMIT ("2.0", "0.5").
func formatCPULimit(cpu float64) string {
	text := strconv.FormatFloat(cpu, 'f', -1, 64)
	if !strings.Contains(text, ".") {
		text += ".0"
	}
	return text
}

// validateLimits checks mem_limit and cpu_limit before anything is created.
func validateLimits(req *api.StartRequest) error {
	if req.MemLimit != nil && *req.MemLimit < minMemLimit {
		return invalidf("mem_limit %d is invalid: use None for no limit, or a size of at least 1M (%d bytes)", *req.MemLimit, minMemLimit)
	}
	if req.CPULimit != nil {
		cpu := *req.CPULimit
		if math.IsNaN(cpu) || math.IsInf(cpu, 0) || cpu < minCPULimit {
			return invalidf("cpu_limit %v is invalid: use None for no limit, or at least %v (1%% of one CPU)", cpu, minCPULimit)
		}
	}
	return nil
}

// planStart validates req and works out the unit to create. It reads users, files and
// systemd's state but changes nothing.
func (s *Service) planStart(ctx context.Context, req *api.StartRequest) (plan, error) {
	if err := validateRequest(req); err != nil {
		return plan{}, err
	}
	if err := s.checkPolicy(req); err != nil {
		return plan{}, err
	}
	vars := unitname.Vars{UserName: req.User, ServerName: req.Server}
	if req.UserID != nil {
		vars.UserID = strconv.FormatInt(*req.UserID, 10)
	}
	raw := func(s string) string { return s }

	var p plan
	var err error
	if req.DynamicUsers {
		if !s.cfg.Accounts.DynamicUsers {
			return plan{}, newError(KindForbidden, "dynamic_users is disabled by the daemon's configuration (accounts.dynamic_users)")
		}
	} else {
		usernameTemplate := req.UsernameTemplate
		if usernameTemplate == "" {
			usernameTemplate = "{USERNAME}"
		}
		unixName := unitname.Expand(usernameTemplate, vars, raw)
		p.acct, err = s.lookupUser(unixName)
		if err != nil {
			return plan{}, invalidf("username_template %q gives the unix user %q: %w", usernameTemplate, unixName, err)
		}
		if err := s.cfg.CheckAccount(p.acct); err != nil {
			return plan{}, newError(KindForbidden, "%w", err)
		}
	}

	p.unit, err = unitname.ForServer(req.UnitNameTemplate, vars)
	if err != nil {
		return plan{}, invalidf("%w", err)
	}

	p.env = make(map[string]string, len(req.Env)+5)
	for name, value := range req.Env {
		p.env[name] = value
	}
	identity, workingDir, err := s.identityProperties(req, p.acct, vars)
	if err != nil {
		return plan{}, err
	}
	if req.DynamicUsers {
		// systemd sets no HOME for a dynamic user; the state directory is its home.
		p.env["HOME"] = workingDir
	}

	basePath := p.env["PATH"]
	if basePath == "" {
		basePath = DefaultPath
	}
	var searchPath []string
	for _, template := range req.ExtraPaths {
		dir, err := expandPath("extra_paths", template, vars)
		if err != nil {
			return plan{}, err
		}
		searchPath = append(searchPath, dir)
	}
	p.env["PATH"] = strings.Join(append(searchPath, basePath), ":")
	p.env["SHELL"] = req.DefaultShell
	if p.env["SHELL"] == "" {
		p.env["SHELL"] = "/bin/bash"
	}

	readOnly, err := s.expandPathList("readonly_paths", req.ReadOnlyPaths, vars)
	if err != nil {
		return plan{}, err
	}
	readWrite, err := s.expandPathList("readwrite_paths", req.ReadWritePaths, vars)
	if err != nil {
		return plan{}, err
	}
	for _, path := range readWrite {
		if err := s.checkAllowedPath("readwrite_paths", strings.TrimPrefix(path, "-")); err != nil {
			return plan{}, err
		}
	}

	// Like upstream SystemdSpawner, {USERNAME} and {USERID} are expanded in the command
	// line too.
	argv := make([]string, len(req.Cmd))
	for i, arg := range req.Cmd {
		argv[i] = unitname.Expand(arg, vars, raw)
	}
	argv[0], err = s.resolveExecutable(argv[0], p.env["PATH"])
	if err != nil {
		return plan{}, err
	}
	if !req.DynamicUsers {
		if err := s.checkNotWritable(argv[0], p.acct); err != nil {
			return plan{}, err
		}
	}
	p.argv = argv

	props := []systemd.Property{
		systemd.PropDescription(fmt.Sprintf("JupyterHub server %q of user %q (sdspawner)", req.Server, req.User)),
		systemd.PropType("exec"),
		systemd.PropExecStartEx(argv),
		systemd.PropWorkingDirectory(workingDir),
		systemd.PropRuntimeDirectory(strings.TrimSuffix(p.unit, unitname.Suffix)),
		systemd.PropRuntimeDirectoryMode(0o700),
		systemd.PropLogExtraFields(fieldManaged+"=1", fieldUser+"="+req.User, fieldServer+"="+req.Server),
		// Keep the server when the kernel kills one of its processes (a kernel of a
		// notebook) for memory: only that process dies, not the whole unit.
		systemd.PropOOMPolicy("continue"),
		// A weight on every unit turns the cpu controller on, so users share CPU fairly
		// even without cpu_limit. Without it one busy user can starve the others.
		systemd.PropCPUWeight(100),
		systemd.PropMemoryAccounting(true),
		systemd.PropTimeoutStopUSec(uint64(time.Duration(s.cfg.Servers.StopTimeout) / time.Microsecond)),
		systemd.PropPrivateTmp(req.IsolateTmp),
		systemd.PropPrivateDevices(req.IsolateDevices),
		systemd.PropNoNewPrivileges(req.DisableUserSudo == nil || *req.DisableUserSudo),
	}
	props = append(props, identity...)
	if req.MemLimit != nil {
		props = append(props, systemd.PropMemoryMax(uint64(*req.MemLimit)))
		p.env["MEM_LIMIT"] = strconv.FormatInt(*req.MemLimit, 10)
	}
	if req.CPULimit != nil {
		usec := math.Round(*req.CPULimit*1e6/cpuQuotaStepUSec) * cpuQuotaStepUSec
		props = append(props, systemd.PropCPUQuotaPerSecUSec(uint64(usec)))
		p.env["CPU_LIMIT"] = formatCPULimit(*req.CPULimit)
		if cpus := s.numCPU(); *req.CPULimit > float64(cpus) {
			// Upstream once took percentages; 50 then meant half a CPU, not fifty.
			p.warnings = append(p.warnings, fmt.Sprintf("cpu_limit %v is more than the %d CPUs of this machine, so it limits nothing; it counts CPUs (0.5 is half a CPU), not percent", *req.CPULimit, cpus))
		}
	}
	if len(readOnly) > 0 {
		props = append(props, systemd.PropReadOnlyPaths(readOnly))
	}
	if len(readWrite) > 0 {
		props = append(props, systemd.PropReadWritePaths(readWrite))
	}
	if slice := sliceName(req.Slice); slice != "" {
		warning, err := s.checkSlice(ctx, slice)
		if err != nil {
			return plan{}, err
		}
		if warning != "" {
			p.warnings = append(p.warnings, warning)
		}
		props = append(props, systemd.PropSlice(slice))
	}

	extra, err := s.extraProperties(ctx, req.UnitExtraProperties, vars)
	if err != nil {
		return plan{}, err
	}
	site, err := s.siteProperties(ctx, vars)
	if err != nil {
		return plan{}, err
	}
	p.props = mergeProperties(mergeProperties(props, extra), site)
	if p.ready, err = s.planReady(req.IP, req.Port, req.ReadyTimeout); err != nil {
		return plan{}, err
	}
	return p, nil
}

// identityProperties returns the properties that choose who the server runs as, and its
// working directory. A dynamic user gets a per-user state directory below /var/lib that
// survives restarts, and starts in it; user_workingdir does not apply then.
func (s *Service) identityProperties(req *api.StartRequest, acct account.Account, vars unitname.Vars) ([]systemd.Property, string, error) {
	if req.DynamicUsers {
		stateDir := unitname.Escape(req.User)
		props := []systemd.Property{
			systemd.PropDynamicUser(true),
			// Without User= systemd names the dynamic user after the unit, which fails
			// for unit names that are not valid user names (longer than 31 characters,
			// or with escapes). One name per JupyterHub user also gives all of a user's
			// servers the same uid, so they can share the state directory.
			systemd.PropUser(unitname.DynamicUserName(req.User)),
			systemd.PropStateDirectory(stateDir),
		}
		return props, "/var/lib/" + stateDir, nil
	}
	workingDir := acct.Home
	if req.UserWorkingDir != nil && *req.UserWorkingDir != "" {
		var err error
		workingDir, err = expandPath("user_workingdir", *req.UserWorkingDir, vars)
		if err != nil {
			return nil, "", err
		}
		if err := s.checkAllowedPath("user_workingdir", workingDir); err != nil {
			return nil, "", err
		}
	}
	props := []systemd.Property{systemd.PropUser(acct.Name), systemd.PropGroup(acct.Group)}
	return props, workingDir, nil
}

// validateRequest checks the fields of req that need nothing but the request itself.
func validateRequest(req *api.StartRequest) error {
	if err := validateName("user", req.User, true); err != nil {
		return err
	}
	if err := validateName("server", req.Server, false); err != nil {
		return err
	}
	if len(req.Cmd) == 0 || req.Cmd[0] == "" {
		return invalidf("cmd is missing: the request must give the server's command line")
	}
	for i, arg := range req.Cmd {
		if strings.ContainsRune(arg, 0) || !utf8.ValidString(arg) {
			return invalidf("cmd[%d] %q contains a NUL byte or is not valid UTF-8", i, arg)
		}
	}
	if err := validateLimits(req); err != nil {
		return err
	}
	for name, value := range req.Env {
		if err := envfile.ValidateName(name); err != nil {
			return invalidf("env: %w", err)
		}
		if err := envfile.ValidateValue(name, value); err != nil {
			return invalidf("env: %w", err)
		}
	}
	if slice := sliceName(req.Slice); slice != "" && unitname.ValidateChars(slice) != nil {
		return invalidf("slice %q is invalid: give a slice unit name such as jupyterhub.slice", *req.Slice)
	}
	return nil
}

// checkPolicy applies the admin's caps and environment deny-list to req.
func (s *Service) checkPolicy(req *api.StartRequest) error {
	if req.MemLimit != nil {
		if err := s.cfg.CheckMemLimit(*req.MemLimit); err != nil {
			return newError(KindForbidden, "%w", err)
		}
	}
	if req.CPULimit != nil {
		if err := s.cfg.CheckCPULimit(*req.CPULimit); err != nil {
			return newError(KindForbidden, "%w", err)
		}
	}
	for name := range req.Env {
		if err := s.cfg.CheckEnvName(name); err != nil {
			return newError(KindForbidden, "env: %w", err)
		}
	}
	return nil
}

// checkAllowedPath resolves symlinks in path and requires the result to lie under the
// admin's allowed prefixes, so that a link cannot lead a server out of them. A path
// that does not exist yet is checked as written.
func (s *Service) checkAllowedPath(option, path string) error {
	resolved, err := s.resolve(path)
	if err != nil {
		resolved = path
	}
	if err := s.cfg.CheckPathPrefix(option, path, resolved); err != nil {
		return newError(KindForbidden, "%w", err)
	}
	return nil
}

// checkNotWritable rejects an executable that the server's user could replace: the
// file itself or any directory on its path writable by that user. The daemon resolves
// the executable as root before the unit starts, so it must not be swapped in between.
func (s *Service) checkNotWritable(executable string, acct account.Account) error {
	for path := executable; ; path = filepath.Dir(path) {
		info, err := s.stat(path)
		if err != nil {
			return invalidf("command %q: %v", executable, err)
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			perm := uint32(info.Mode().Perm())
			if info.Mode()&fs.ModeSticky == 0 && acct.CanWrite(st.Uid, st.Gid, perm) {
				return newError(KindForbidden, "command %q is not allowed: %s is writable by the unix user %q, who could replace it; install the server's command where only root can write", executable, path, acct.Name)
			}
		}
		if path == "/" {
			return nil
		}
	}
}

// sliceName returns the slice option as a unit name, with ".slice" appended when it
// has no suffix, as systemd-run --slice does. It returns "" when the option is not set.
func sliceName(option *string) string {
	if option == nil || *option == "" {
		return ""
	}
	if strings.HasSuffix(*option, ".slice") {
		return *option
	}
	return *option + ".slice"
}
