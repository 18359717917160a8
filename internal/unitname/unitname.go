// Package unitname derives systemd unit names from JupyterHub user and server names.
//
// User names come from authenticators and may contain anything JupyterHub accepts:
// spaces, backslashes (dom\user), '@', non-ASCII letters. A derived name must be a valid
// unit name, the same for the same input on every call, and different for different
// (user, server) pairs, because two servers sharing a unit would stop each other.
package unitname

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Suffix is the unit type suffix of every unit sdspawner creates.
const Suffix = ".service"

// maxNameLength is systemd's limit on a unit name including its suffix (UNIT_NAME_MAX
// is 256 bytes with the terminating NUL, in systemd's src/basic/unit-name.h).
const maxNameLength = 255

// maxCreatedLength is the longest unit name, with its suffix, that ForServer returns.
// systemd names a unit's PrivateTmp= directory "systemd-private-", 32 hex digits, "-",
// the unit name and "-XXXXXX", and that file name must fit in 255 bytes too.
const maxCreatedLength = maxNameLength - len("systemd-private-") - 32 - len("-") - len("-XXXXXX")

// hashLength is the number of hex digits of SHA-256 kept when a long name is shortened.
const hashLength = 16

// hashMark starts the hash of a shortened name. Escape only ever writes a backslash
// followed by 'x', so no name that was not shortened can end the same way.
const hashMark = `\h`

// DefaultTemplate is upstream SystemdSpawner's default unit_name_template.
const DefaultTemplate = "jupyter-{USERNAME}-singleuser"

// Vars are the values a template may refer to.
type Vars struct {
	// UserName is the JupyterHub user name, expanded for {USERNAME}.
	UserName string
	// UserID is JupyterHub's id of the user as decimal digits, expanded for {USERID}
	// as upstream SystemdSpawner does; empty when the request does not carry it.
	UserID string
	// ServerName is the JupyterHub named server, expanded for {SERVERNAME}; "" for the
	// default server.
	ServerName string
}

// Escape returns s with every byte outside [A-Za-z0-9_.-] written as \xNN, the form that
// systemd-escape uses. Because the backslash itself is escaped, the result is unique for
// each input. A leading '.' is escaped too, as systemd-escape does, so that the result
// never starts a hidden file name when it is used as a path component.
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		plain := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || (c == '.' && i > 0)
		if plain {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, `\x%02x`, c)
	}
	return b.String()
}

// Expand replaces {USERNAME}, {USERID} and {SERVERNAME} in template, passing each value
// through escape first. As in Python's str.format, which upstream SystemdSpawner uses,
// "{{" and "}}" stand for literal braces. Unlike str.format, any other text in braces is
// kept as it is instead of being an error, so a value with literal braces still works.
func Expand(template string, vars Vars, escape func(string) string) string {
	values := map[string]string{
		"USERNAME":   vars.UserName,
		"USERID":     vars.UserID,
		"SERVERNAME": vars.ServerName,
	}
	var b strings.Builder
	for i := 0; i < len(template); i++ {
		c := template[i]
		switch {
		case c == '{' && strings.HasPrefix(template[i:], "{{"):
			b.WriteByte('{')
			i++
		case c == '}' && strings.HasPrefix(template[i:], "}}"):
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexAny(template[i+1:], "{}")
			if end >= 0 && template[i+1+end] == '}' {
				if value, ok := values[template[i+1:i+1+end]]; ok {
					b.WriteString(escape(value))
					i += end + 1
					continue
				}
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Uses reports whether template refers to the variable name, such as "USERNAME".
func Uses(template, name string) bool {
	return strings.Contains(template, "{"+name+"}")
}

// ForServer returns the full unit name, with the .service suffix, for one server.
//
// When the server is a named server and the template does not refer to {SERVERNAME},
// ":" and the escaped server name are appended, so that the default template keeps
// upstream's name for the default server and still gives each named server its own unit.
// Escape never emits ':', so the split between user and server part stays unambiguous.
// A name longer than maxCreatedLength is cut and ends in a hash of the whole name.
func ForServer(template string, vars Vars) (string, error) {
	if template == "" {
		template = DefaultTemplate
	}
	base := Expand(template, vars, Escape)
	if vars.ServerName != "" && !strings.Contains(template, "{SERVERNAME}") {
		base += ":" + Escape(vars.ServerName)
	}
	base = strings.TrimSuffix(base, Suffix)

	if len(base)+len(Suffix) > maxCreatedLength {
		sum := sha256.Sum256([]byte(base))
		keep := maxCreatedLength - len(Suffix) - hashLength - len(hashMark)
		base = trimEscape(base[:keep]) + hashMark + hex.EncodeToString(sum[:])[:hashLength]
	}

	name := base + Suffix
	if err := Validate(name); err != nil {
		return "", fmt.Errorf("unit_name_template %q gives an invalid unit name: %w", template, err)
	}
	return name, nil
}

// trimEscape drops a \xNN sequence that a cut left incomplete at the end of s.
func trimEscape(s string) string {
	if i := strings.LastIndexByte(s, '\\'); i >= 0 && len(s)-i < 4 {
		return s[:i]
	}
	return s
}

// Validate reports whether name is a valid name for a service unit, by the rules of
// systemd's unit_name_is_valid: at most 255 bytes, only [A-Za-z0-9:_.\-@\\] before the
// suffix, and no template or instance part, because sdspawner creates plain services.
func Validate(name string) error {
	if len(name) > maxNameLength {
		return fmt.Errorf("unit name %q is %d bytes long, more than systemd's limit of %d", name, len(name), maxNameLength)
	}
	base, ok := strings.CutSuffix(name, Suffix)
	if !ok {
		return fmt.Errorf("unit name %q does not end in %s", name, Suffix)
	}
	if base == "" {
		return fmt.Errorf("unit name %q has an empty name before %s", name, Suffix)
	}
	return ValidateChars(name)
}

// ValidateChars returns an error unless name is at most 255 bytes of characters that
// systemd allows in unit names, leaving out '@' because sdspawner uses no templates.
func ValidateChars(name string) error {
	if len(name) > maxNameLength {
		return fmt.Errorf("unit name %q is %d bytes long, more than systemd's limit of %d", name, len(name), maxNameLength)
	}
	base := name
	for i := 0; i < len(base); i++ {
		c := base[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == ':' || c == '_' || c == '.' || c == '-' || c == '\\'
		if !ok {
			return fmt.Errorf("unit name %q contains the character %q, which systemd does not allow in unit names; use {USERNAME} and the other template variables, which are escaped", name, rune(c))
		}
	}
	return nil
}

// maxUserNameLength is the longest user name systemd accepts for a dynamic user
// (valid_user_group_name in systemd's src/basic/user-util.c, for names that must also
// work with utmp).
const maxUserNameLength = 31

// DynamicUserName returns the name of the dynamic user (DynamicUser=yes) for a
// JupyterHub user: "jh-", the user name's letters, digits, '_' and '-' in lower case,
// cut to fit, then '-' and eight hex digits of its SHA-256, so that different users
// never share a uid. The result is a valid user name of at most 31 characters.
func DynamicUserName(user string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(user) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			b.WriteRune(r)
		}
	}
	sum := sha256.Sum256([]byte(user))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	readable := b.String()
	if keep := maxUserNameLength - len("jh-") - len(suffix); len(readable) > keep {
		readable = readable[:keep]
	}
	return "jh-" + readable + suffix
}
