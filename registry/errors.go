package registry

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound is returned by [Reader.Get], [Writer.Update] and
	// [Writer.Delete] when no entry has the given ID, and by the other
	// stores' getters and deleters when what they name is not there. The
	// errors of the stores wrap it with [NotFoundf], which names the
	// object: "registry: agent "spiffe://..." not found".
	ErrNotFound = errors.New("registry: not found")

	// ErrConflict is returned by [Writer.Update] and [Writer.Delete] when the
	// entry's stored revision differs from the revision the caller read: another
	// writer changed it first. Read it again and retry.
	ErrConflict = errors.New("registry: revision conflict")

	// ErrAlreadyExists is returned by [Writer.Create] and [Writer.Update] when
	// another entry already has the same SPIFFE ID, parent ID and selector set.
	ErrAlreadyExists = errors.New("registry: similar entry already exists")

	// ErrInvalid wraps every validation failure: an invalid entry, filter, page
	// or page token. The message says which field is wrong.
	ErrInvalid = errors.New("registry: invalid argument")
)

// NotFoundf returns an error wrapping [ErrNotFound] whose message names
// what was not found, from format and args: NotFoundf("agent %q", id)
// says registry: agent "spiffe://example.org/..." not found. Stores use it
// so that the message fits the object, an entry, agent, bundle or token.
func NotFoundf(format string, args ...any) error {
	return &notFoundError{msg: "registry: " + fmt.Sprintf(format, args...) + " not found"}
}

type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return e.msg }
func (e *notFoundError) Is(target error) bool { return target == ErrNotFound }

// invalidf returns an error that wraps [ErrInvalid] with a message that
// starts with the package name.
func invalidf(format string, args ...any) error {
	return &invalidError{msg: "registry: " + fmt.Sprintf(format, args...)}
}

// invalidError keeps the detailed message while matching [ErrInvalid], and
// the cause, if any, for [errors.Is] and [errors.As].
type invalidError struct {
	msg   string
	cause error
}

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }
func (e *invalidError) Unwrap() error        { return e.cause }
