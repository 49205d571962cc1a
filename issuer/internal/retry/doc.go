// Package retry says when an issuer tries again to mint an SVID that
// failed, and how it reports the failure: the schedules of a local and of
// a remote Signer, the record of an entry's failures, one log line for the
// failures of a batch, and the error a Workload API caller is given.
package retry
