package attest

import "errors"

// ErrRejected reports that a workload failed attestation: the process is not
// (or is no longer) the one that connected, for example because it exited,
// its PID was reused or its credentials differ from the ones the kernel gave
// for the connection. Servers should answer such a caller with
// PermissionDenied and issue nothing. Attestors wrap it; test with
// [errors.Is].
var ErrRejected = errors.New("attest: workload rejected")

// ErrInvalidSelector is wrapped by the errors of [ParseSelector] and
// [Selector.Validate].
var ErrInvalidSelector = errors.New("attest: invalid selector")
