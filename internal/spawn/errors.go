// Package spawn turns a hub's start, stop and status requests into systemd transient
// services, and keeps the index of which unit runs which user's server.
package spawn

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the API, which maps each kind to an HTTP status.
type Kind int

// The kinds of error a request can end in.
const (
	KindInternal Kind = iota
	KindInvalid
	KindForbidden
	KindNotFound
	KindConflict
	KindUnavailable
)

// Error is an error with a Kind. Its message is meant for the hub's admin and user.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, KindInternal when it carries none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

func newError(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

func invalidf(format string, args ...any) error { return newError(KindInvalid, format, args...) }
