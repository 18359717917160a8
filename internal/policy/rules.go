package policy

import (
	"fmt"
	"log/slog"
	"os/user"
	"strconv"

	"github.com/sdspawner/sdspawner/internal/account"
)

// Caller is the peer of one API connection, as the kernel reports it.
type Caller struct {
	// PID is the caller's process id.
	PID int32
	// UID is the caller's user id.
	UID uint32
	// GID is the caller's primary group id.
	GID uint32
}

// CallerAllowed reports whether caller may use the API: its uid is listed, or its user
// is a member of a listed group.
func (c *Config) CallerAllowed(caller Caller) bool {
	for _, uid := range c.Callers.UIDs {
		if caller.UID == uid {
			return true
		}
	}
	for _, group := range c.Callers.Groups {
		member, err := account.InGroup(caller.UID, group)
		if err != nil {
			slog.Debug("group membership check failed", "uid", caller.UID, "group", group, "err", err)
			continue
		}
		if member {
			return true
		}
	}
	return false
}

// CheckAccount returns an error unless servers may run as acct: never root, never a
// uid below accounts.min_uid, which keeps system accounts out.
func (c *Config) CheckAccount(acct account.Account) error {
	if acct.UID == 0 {
		return fmt.Errorf("unix user %q has uid 0: servers never run as root", acct.Name)
	}
	if acct.UID < c.Accounts.MinUID {
		return fmt.Errorf("unix user %q has uid %d, below accounts.min_uid %d: system accounts may not run servers", acct.Name, acct.UID, c.Accounts.MinUID)
	}
	if c.Accounts.RequiredGroup != "" {
		group, err := user.LookupGroup(c.Accounts.RequiredGroup)
		if err != nil {
			return fmt.Errorf("accounts.required_group %q was not found (%v): create the group and add the users who may run servers to it, or remove accounts.required_group from the daemon's configuration", c.Accounts.RequiredGroup, err)
		}
		for _, gid := range acct.GIDs {
			if strconv.FormatUint(uint64(gid), 10) == group.Gid {
				return nil
			}
		}
		return fmt.Errorf("unix user %q is not a member of the group %q, which accounts.required_group requires; add the user to it", acct.Name, c.Accounts.RequiredGroup)
	}
	return nil
}
