// Package attestation attests the callers of an issuer's Workload API:
// with what the server recorded of each at accept (endpoint.Caller), so
// that a process that exited, or executed another file, since it connected
// is refused; telling the attestor which selector kinds the registry's
// entries use (attest.Workload.Needed), so that it can skip the others;
// and recording those it was told to skip, so that the issuer attests the
// caller again once an entry needs one (Stale).
package attestation
