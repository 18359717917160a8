// Package account looks up the unix accounts that servers run as.
//
// Lookups go through the C library's NSS (getpwnam_r), so users from LDAP, SSSD or
// winbind are found like local ones. That needs cgo: a binary built with
// CGO_ENABLED=0 would read only /etc/passwd.
package account

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Account is one unix account as NSS reports it.
type Account struct {
	// Name is the login name.
	Name string
	// UID is the numeric user id.
	UID uint32
	// GID is the numeric id of the primary group.
	GID uint32
	// Group is the name of the primary group, or its number when the group has no name.
	Group string
	// Home is the home directory.
	Home string
	// GIDs are the ids of every group the user is a member of, the primary one included.
	GIDs []uint32
}

// ErrNotFound is returned, wrapped, when NSS has no such user.
var ErrNotFound = errors.New("unix user not found")

// Lookup returns the account called name.
func Lookup(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return Account{}, fmt.Errorf("%w: %q (create it, or set username_template to map JupyterHub names to existing unix users)", ErrNotFound, name)
		}
		return Account{}, fmt.Errorf("look up unix user %q: %w", name, err)
	}
	return fromUser(u)
}

// LookupID returns the account with uid.
func LookupID(uid uint32) (Account, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return Account{}, fmt.Errorf("look up uid %d: %w", uid, err)
	}
	return fromUser(u)
}

func fromUser(u *user.User) (Account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("unix user %q has a non-numeric uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return Account{}, fmt.Errorf("unix user %q has a non-numeric gid %q", u.Username, u.Gid)
	}
	group := u.Gid
	if g, err := user.LookupGroupId(u.Gid); err == nil {
		group = g.Name
	}
	gids := []uint32{uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil && n != gid {
				gids = append(gids, uint32(n))
			}
		}
	}
	return Account{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Group: group, Home: u.HomeDir, GIDs: gids}, nil
}

// InGroup reports whether the user with uid is a member of the group called group,
// as its primary group or through NSS group membership.
func InGroup(uid uint32, group string) (bool, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return false, fmt.Errorf("look up uid %d: %w", uid, err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return false, fmt.Errorf("look up group %q: %w", group, err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		return false, fmt.Errorf("list groups of uid %d: %w", uid, err)
	}
	for _, id := range ids {
		if id == g.Gid {
			return true, nil
		}
	}
	return u.Gid == g.Gid, nil
}

// defaultUIDMin is the first uid of regular users when /etc/login.defs does not set it,
// the value Debian, Ubuntu, Fedora and Arch ship.
const defaultUIDMin = 1000

// UIDMin returns UID_MIN from the login.defs file at path, the first uid that useradd
// gives to regular users, or 1000 when the file or the key is missing.
func UIDMin(path string) (uint32, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return defaultUIDMin, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()

	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 2 || fields[0] != "UID_MIN" {
			continue
		}
		v, err := strconv.ParseUint(fields[1], 0, 32)
		if err != nil {
			return 0, fmt.Errorf("%s: UID_MIN %q is not a number", path, fields[1])
		}
		return uint32(v), nil
	}
	if err := scanner.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return defaultUIDMin, nil
}

// CanWrite reports whether the account may write to a file or directory with the given
// owner, group and permission bits, by the classic owner, group, other rule. An owner
// counts as able to write whatever the bits are, because an owner may chmod.
func (a Account) CanWrite(ownerUID, ownerGID uint32, perm uint32) bool {
	if ownerUID == a.UID {
		return true
	}
	for _, gid := range a.GIDs {
		if gid == ownerGID {
			return perm&0o020 != 0
		}
	}
	return perm&0o002 != 0
}
