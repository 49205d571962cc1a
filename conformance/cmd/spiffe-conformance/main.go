// Command spiffe-conformance checks an implementation of the SPIFFE
// standards against the rules of package kit and reports a verdict per
// rule, as text, JSON or JUnit XML. Its exit status is 0 when no MUST rule
// failed, 1 when one did, and 2 when it could not run (bad usage, an
// unreadable file, an endpoint it cannot identify).
//
// Usage:
//
//	spiffe-conformance x509 [flags] SVID.pem
//	    an X509-SVID: certificates, leaf first, and optionally its PKCS#8
//	    key; -bundle TD=FILE (PEM certificates or a SPIFFE bundle
//	    document, repeatable) validates the chain
//	spiffe-conformance bundle [flags] BUNDLE.json
//	    a SPIFFE bundle document; -previous OLD.json checks the sequence
//	    between an earlier version and this one
//	spiffe-conformance jwt [flags] TOKEN-FILE
//	    a JWT-SVID ("-" reads standard input); -bundle TD=FILE (a JWK
//	    Set or a SPIFFE bundle document) verifies the signature,
//	    -audience the aud claim
//	spiffe-conformance wit [flags] TOKEN-FILE
//	    a WIT-SVID ("-" reads standard input); -bundle TD=FILE (a JWK
//	    Set or a SPIFFE bundle document) verifies the signature, -key
//	    FILE (a private JWK) checks the key cnf.jwk binds
//	spiffe-conformance workload -addr ADDR [flags]
//	    a live Workload API endpoint, unix:///PATH or tcp://IP:PORT (or,
//	    on Windows, npipe:NAME, a named pipe as go-spiffe names it);
//	    -rotation-wait D watches for a rotation, -unregistered-uid UID
//	    (which runs the kit again under that uid) or -unregistered-addr
//	    checks the refusal of a caller entitled to nothing, -timeout
//	    bounds every call; it only reads, and refuses an endpoint it
//	    cannot identify as a Workload API
//	spiffe-conformance bundle-endpoint -url URL -trust-domain TD -profile P [flags]
//	    a live bundle endpoint: https_web (-roots PEM, default the
//	    system's) or https_spiffe (-endpoint-id ID -endpoint-bundle FILE);
//	    -rotation-wait D fetches again until the keys change to check the
//	    sequence; it only sends GETs
//	spiffe-conformance sds -addr ADDR [flags]
//	    the Secret Discovery Service beside a Workload API, with the
//	    resource names SPIRE documents (default, a SPIFFE ID, ROOTCA, a
//	    trust domain, ALL)
//
// Common flags: -format text|json|junit (default text), -o FILE (default
// standard output). See docs/CONFORMANCE.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
