package azureimds_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/azureimds"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A server admitting the VMs of one subscription of one tenant, with
// Azure's roots. An agent of a tenant not allowed is refused with
// attest.ErrNodeRejected.
func ExampleNewServer() {
	srv, err := azureimds.NewServer(azureimds.ServerConfig{Tenants: map[string]azureimds.TenantConfig{
		"contoso.onmicrosoft.com": {Subscriptions: []string{"8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	agent := func(context.Context, []byte) ([]byte, error) {
		return []byte(`{"document":{"encoding":"pkcs7","signature":"MIIB"},"metadata":{"agentDomain":"fabrikam.onmicrosoft.com"}}`), nil
	}
	_, err = srv.Attest(context.Background(), td, []byte("{}"), agent)
	fmt.Println(errors.Is(err, attest.ErrNodeRejected))
	fmt.Println(err)
	// Output:
	// true
	// azureimds: tenant fabrikam.onmicrosoft.com is not allowed
}

// The agent side, on an Azure VM: the attested document is fetched for
// each nonce the server sends.
func ExampleNewClient() {
	client, err := azureimds.NewClient(azureimds.ClientConfig{TenantDomain: "contoso.onmicrosoft.com"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(client.Type())
	// Output: azure_imds
}
