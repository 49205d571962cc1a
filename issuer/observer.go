package issuer

import "time"

// An Observer is told what an Issuer does, for metrics: each call to its
// Signer and each attestation of a caller. Set it in Config.Observer;
// without one the issuer does no accounting at all.
//
// The issuer calls the methods on the goroutines that did the work
// (Workload API handlers, Run's minting), concurrently, and never with a
// lock of its own held. They must be safe for concurrent use, return
// quickly and never block: a slow Observer delays the callers that wait
// for an SVID.
type Observer interface {
	// Signed follows each call to Config.Signer. svidType is "x509" for a
	// SignX509SVIDs call of n requests, of which failed came to nothing
	// (every one when the call itself failed; a result the issuer refused,
	// such as a chain for another key, counts as failed too), or "jwt"
	// for a SignJWTSVID call (n is 1, failed 0 or 1), or "wit" for a
	// SignWITSVID call (likewise). d is how long the
	// Signer took: a local CA's signing, or a node agent's round trip to
	// its server.
	Signed(svidType string, n, failed int, d time.Duration)

	// WorkloadAttested follows each attestation of a Workload API caller
	// by Config.Attestor. outcome is "ok", "rejected" (the attestor
	// rejected the caller: attest.ErrRejected; the caller gets no
	// identity) or "error" (the attestor failed or was cut short; the
	// caller is told to retry). d is how long the attestation took.
	WorkloadAttested(outcome string, d time.Duration)
}

// svidX509 is the svidType an Observer is told of X509-SVIDs.
const svidX509 = "x509"
