package azuremsi_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/azuremsi"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A server admitting the managed identities of one tenant whose agents ask
// for tokens for the server's own application. A token of another tenant
// is refused with attest.ErrNodeRejected before any key is fetched.
func ExampleNewServer() {
	srv, err := azuremsi.NewServer(azuremsi.ServerConfig{Tenants: map[string]azuremsi.TenantConfig{
		"72f988bf-86f1-41af-91ab-2d7cd011db47": {ResourceID: "api://spiffe-server"},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	// {"alg":"RS256","kid":"k"}.{"tid":"0d0f5d4c-2e1b-4b58-9c3a-7e1f2a3b4c5d"}.signature
	other := []byte(`{"token":"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsifQ.eyJ0aWQiOiIwZDBmNWQ0Yy0yZTFiLTRiNTgtOWMzYS03ZTFmMmEzYjRjNWQifQ.c2ln"}`)
	_, err = srv.Attest(context.Background(), td, other, nil)
	fmt.Println(errors.Is(err, attest.ErrNodeRejected))
	fmt.Println(err)
	// Output:
	// true
	// azuremsi: tenant 0d0f5d4c-2e1b-4b58-9c3a-7e1f2a3b4c5d is not allowed
}

// The agent side, on an Azure VM with a managed identity: a token for the
// server's resource is fetched again at each attestation.
func ExampleNewClient() {
	client, err := azuremsi.NewClient(azuremsi.ClientConfig{
		ResourceID: "api://spiffe-server",
		// Endpoint: "http://169.254.169.254", the default
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(client.Type())
	// Output: azure_msi
}
