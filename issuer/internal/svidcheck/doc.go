// Package svidcheck checks the SVIDs an issuer did not make itself before
// it serves them: the X.509 chains and tokens its Signer returns (a Signer
// may be a remote server, and a chain for another key or identity would
// hand a workload an SVID it cannot use, or one it must not have), and the
// X509-SVIDs a program saved and hands back after a restart.
//
// A token's signature is the Signer's concern (a remote one answers over
// an authenticated channel); what it names and binds is the issuer's,
// which serves it with its own key.
package svidcheck
