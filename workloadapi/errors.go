package workloadapi

import "errors"

// ErrSourceClosed is returned, wrapped, by every getter of X509Source,
// JWTSource, BundleSource and WITSource after Close.
var ErrSourceClosed = errors.New("workloadapi: source is closed")

// ErrNoUpdate is returned, wrapped, by the getters of a source created with
// WithoutWaitingForFirstUpdate while it has not received its first update
// yet. The wrapping error names the last error of the watch, if any.
var ErrNoUpdate = errors.New("workloadapi: no update received yet")

// notReadyError reports that a source has nothing to serve yet. It matches
// ErrNoUpdate with errors.Is and unwraps to the last watch error.
type notReadyError struct {
	what string // "X509-SVID", "JWT bundle", ...
	last error  // last watch error, or nil
}

func (e *notReadyError) Error() string {
	msg := "workloadapi: no " + e.what + " received yet"
	if e.last != nil {
		msg += ": " + e.last.Error()
	}
	return msg
}

func (e *notReadyError) Is(target error) bool { return target == ErrNoUpdate }

func (e *notReadyError) Unwrap() error { return e.last }
