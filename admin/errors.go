package admin

import (
	"errors"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// ErrPermissionDenied is wrapped by every [Client] method's error when the
// server refused the caller: its uid may not administer the server, or the
// socket's file permissions kept it from connecting at all.
var ErrPermissionDenied = errors.New("admin: permission denied")

// ErrFailedPrecondition is wrapped by an error when the request is valid but
// the state of what it names forbids it: tainting or revoking the active
// authority, activating when none is prepared. The managers behind the
// server (package admin/adminserver) wrap it to have the API answer 409
// with the code failed_precondition; the [Client] wraps it in the error of
// such an answer.
var ErrFailedPrecondition = errors.New("admin: failed precondition")

// ErrUnavailable is wrapped by an error when what the request needs did
// not answer: the server's stores within its request timeout
// (adminserver.Config.RequestTimeout), or a federated trust domain's
// bundle endpoint on a refresh. The API answers 503 with the code
// unavailable; the [Client] wraps it in the error of such an answer. The
// server's adminserver.FederationRefresher wraps it when the fetch fails.
var ErrUnavailable = errors.New("admin: unavailable")

// codeError returns the sentinel a code names, or nil: the error of an
// answer of the server (an apiclient.Refusal) wraps it, so that callers
// can use errors.Is.
func codeError(code string) error {
	switch code {
	case wire.CodeInvalid:
		return registry.ErrInvalid
	case wire.CodeNotFound:
		return registry.ErrNotFound
	case wire.CodeConflict:
		return registry.ErrConflict
	case wire.CodeAlreadyExists:
		return registry.ErrAlreadyExists
	case wire.CodePermissionDenied:
		return ErrPermissionDenied
	case wire.CodeFailedPrecondition:
		return ErrFailedPrecondition
	case wire.CodeUnavailable:
		return ErrUnavailable
	}
	return nil
}
