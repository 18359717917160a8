// Package envfile writes the environment of a user's server to a root-only file that
// systemd reads with EnvironmentFile=.
//
// The environment carries the server's JupyterHub API token. Unit properties such as
// Environment= can be read by any local user over D-Bus (systemctl show), while a file
// that only root can read is read by systemd itself, as root, when it starts the unit.
package envfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"
)

// DefaultDir is the directory for environment files, outside any unit's
// RuntimeDirectory so that no spawned user owns it.
const DefaultDir = "/run/sdspawner/env"

// nameRE is the full-match pattern for environment variable names. POSIX allows more,
// but names outside it cannot be used from a shell and systemd warns about them.
var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidateName returns an error naming the variable when name is not a valid
// environment variable name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("environment variable name %q is invalid: names must match [A-Za-z_][A-Za-z0-9_]*", name)
	}
	return nil
}

// ValidateValue returns an error naming the variable when value cannot pass through an
// environment file unchanged. systemd rejects values that are not UTF-8, and NUL cannot
// be stored in an environment at all. Other control characters than tab and newline are
// rejected because systemd releases differ on whether they keep them.
func ValidateValue(name, value string) error {
	if !utf8.ValidString(value) {
		return fmt.Errorf("environment variable %s has a value that is not valid UTF-8", name)
	}
	for _, r := range value {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return fmt.Errorf("environment variable %s contains the control character %U; only tab and newline are allowed", name, r)
		}
	}
	return nil
}

// Encode returns env in systemd's EnvironmentFile syntax, one double-quoted assignment a
// line, sorted by name. Inside double quotes systemd's parser (src/basic/env-file.c)
// takes a backslash before one of " \ ` $ as that character, and keeps newlines, so
// escaping those four characters makes every valid value read back unchanged.
func Encode(env map[string]string) ([]byte, error) {
	names := make([]string, 0, len(env))
	for name, value := range env {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
		if err := ValidateValue(name, value); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	sort.Strings(names)

	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteString(`="`)
		for _, r := range env[name] {
			if r == '"' || r == '\\' || r == '`' || r == '$' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteString("\"\n")
	}
	return []byte(b.String()), nil
}

// Store manages the environment files in one root-only directory.
type Store struct {
	dir string
}

// Open creates dir with mode 0700 if it is missing and checks that it is a real
// directory owned by root that no other user can enter, so that the secrets in it stay
// readable by root only.
func Open(dir string) (*Store, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("environment file directory %q is not an absolute path", dir)
	}
	// The parent is often the socket's directory, which the hub must be able to enter,
	// so only the last element is made private.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create parent of environment file directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create environment file directory %s: %w", dir, err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("check environment file directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("environment file directory %s is not a directory (a symlink or a file is not accepted)", dir)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Geteuid()) {
		return nil, fmt.Errorf("environment file directory %s is owned by uid %d, not by the daemon's uid %d", dir, st.Uid, os.Geteuid())
	}
	if info.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("set mode 0700 on environment file directory %s: %w", dir, err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir returns the directory of the store.
func (s *Store) Dir() string { return s.dir }

// Path returns the file name used for unit. Unit names never contain '/', so the
// result is always directly inside the store's directory. systemd expands
// EnvironmentFile= paths with glob(3), which takes a backslash as an escape, so the
// backslashes of escaped unit names are written as '@', which sdspawner's unit names
// never contain; the mapping is reversible and keeps names distinct.
func (s *Store) Path(unit string) string {
	return filepath.Join(s.dir, strings.ReplaceAll(unit, `\`, "@")+".env")
}

// Write stores env for unit, replacing any earlier file atomically, with mode 0600.
func (s *Store) Write(unit string, env map[string]string) (string, error) {
	data, err := Encode(env)
	if err != nil {
		return "", err
	}
	path := s.Path(unit)
	tmp, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("create environment file for %s in %s: %w", unit, s.dir, err)
	}
	// CreateTemp already uses mode 0600; the explicit Chmod guards against a umask or
	// a future change of that default.
	err = errors.Join(tmp.Chmod(0o600), write(tmp, data), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("write environment file %s: %w", path, err)
	}
	return path, nil
}

func write(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// Remove deletes the environment file of unit. A missing file is not an error.
func (s *Store) Remove(unit string) error {
	err := os.Remove(s.Path(unit))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove environment file of %s: %w", unit, err)
	}
	return nil
}

// Units returns the unit names that have an environment file, in directory order.
func (s *Store) Units() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list environment files in %s: %w", s.dir, err)
	}
	var units []string
	for _, entry := range entries {
		name, ok := strings.CutSuffix(entry.Name(), ".env")
		if ok && entry.Type().IsRegular() && !strings.HasPrefix(name, ".") {
			units = append(units, strings.ReplaceAll(name, "@", `\`))
		}
	}
	return units, nil
}
