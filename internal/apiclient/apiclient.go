// Package apiclient is what the module's clients of an HTTP+JSON API on a
// unix socket share (package admin's and package launch's): the HTTP
// client of the socket, the error of a call that reached no server (or
// that the socket's permissions refused, [DeniedError]), and
// the error of a server's refusal, which wraps the sentinel of its answer.
// Each API keeps its own wire form of errors; this package only gives the
// decoded refusal its message and sentinel.
//
//	hc := apiclient.HTTPClient(path, 2)
//	resp, err := hc.Do(req)
//	if err != nil {
//		return apiclient.DialError("admin", "the server", path, ErrPermissionDenied, err)
//	}
//	if resp.StatusCode/100 != 2 {
//		return apiclient.Refused("admin", "", message, sentinel)
//	}
package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// HTTPClient returns an HTTP client whose every request goes to the unix
// socket at path, whatever the URL's host: it connects when a request
// needs it, keeps up to maxIdle idle connections for 30 seconds, and
// waits up to a minute for an answer's headers. Its CloseIdleConnections
// releases them.
func HTTPClient(path string, maxIdle int) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns:          maxIdle,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		DisableCompression:    true,
	}}
}

// DialError returns the error of a request to the API of package pkg on
// the unix socket at path that got no answer (err, from http.Client.Do).
// When the socket's file permissions refused the connection, before the
// server could check the caller's uid, it is a [*DeniedError] wrapping
// denied, the package's sentinel, and err. Otherwise it says that what,
// the server it is, could not be reached there: "pkg: cannot reach WHAT
// at PATH: ...", wrapping err. Of a *url.Error it keeps the cause only:
// its method and URL name no server (the socket does).
func DialError(pkg, what, path string, denied, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return &DeniedError{path: path, uid: os.Getuid(), denied: denied, err: err}
	}
	return fmt.Errorf("%s: cannot reach %s at %s: %w", pkg, what, path, err)
}

// A DeniedError is the error of a connection to a socket that the system
// refused the caller before the server could answer:
// the mode of the socket or of a directory above it (EACCES), or a
// security policy (EPERM). errors.Is finds the package's sentinel and the
// errno. Its message says so once, after the sentinel's: "admin:
// permission denied: uid 1000 may not connect to /run/admin.sock: the mode
// of the socket or of a directory above it refuses that uid; run as a
// user they allow, such as the socket's owner".
type DeniedError struct {
	path        string // the socket
	uid         int    // the caller's
	denied, err error
}

// Error returns the error's message.
func (e *DeniedError) Error() string {
	why := "the mode of the socket or of a directory above it refuses that uid; run as a user they allow, such as the socket's owner"
	if !errors.Is(e.err, syscall.EACCES) {
		why = "the system's security policy refused it (" + syscall.EPERM.Error() + ")"
	}
	return fmt.Sprintf("%v: uid %d may not connect to %s: %s", e.denied, e.uid, e.path, why)
}

// Unwrap returns the package's sentinel and the cause.
func (e *DeniedError) Unwrap() []error { return []error{e.denied, e.err} }

// A Refusal is a server's refusal of a call: its message, and the sentinel
// its answer names (nil when it names none), which errors.Is finds.
type Refusal struct {
	msg      string
	sentinel error
}

// Refused returns the refusal of the API of package pkg whose message the
// server gave as msg. A message that names the package already ("pkg:
// ...") is kept as it is; any other is said after "pkg: " and said, the
// words the package puts before a server's own ("the server said: ").
func Refused(pkg, said, msg string, sentinel error) *Refusal {
	if !strings.HasPrefix(msg, pkg+": ") {
		msg = pkg + ": " + said + msg
	}
	return &Refusal{msg: msg, sentinel: sentinel}
}

// Error returns the refusal's message.
func (r *Refusal) Error() string { return r.msg }

// Unwrap returns the sentinel of the refusal, or nil.
func (r *Refusal) Unwrap() error { return r.sentinel }
