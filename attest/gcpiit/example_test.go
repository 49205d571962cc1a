package gcpiit_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/gcpiit"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A server admitting the instances of one project, with Google's keys
// fetched from GoogleKeysURL at the first attestation. A payload that is
// not an RS256 token is refused with attest.ErrNodeRejected before any
// key is fetched.
func ExampleNewServer() {
	srv, err := gcpiit.NewServer(gcpiit.ServerConfig{
		ProjectIDs: []string{"my-project"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	forged := []byte("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2FjY291bnRzLmdvb2dsZS5jb20ifQ.")
	_, err = srv.Attest(context.Background(), td, forged, nil)
	fmt.Println(errors.Is(err, attest.ErrNodeRejected))
	fmt.Println(err)
	// Output:
	// true
	// gcpiit: identity token does not parse as an RS256 JWT: unexpected signature algorithm "none"; expected ["RS256"]
}

// The agent side, on a Compute Engine instance: a token is fetched from
// the metadata server at each attestation.
func ExampleNewClient() {
	client, err := gcpiit.NewClient(gcpiit.ClientConfig{
		// Host: "metadata.google.internal", the metadata library's default
		// being 169.254.169.254
		// Audience: gcpiit.DefaultAudience, SPIRE's
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(client.Type())
	// Output: gcp_iit
}
