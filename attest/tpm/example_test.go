package tpm_test

import (
	"context"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The two sides of an attestation, joined in one process as the node API
// joins them across the network.
func Example() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	srv, err := tpm.LoadServer(tpm.FileConfig{ManufacturerCABundles: []string{"/etc/spiffekit/tpm-manufacturers.pem"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := tpm.NewClient(tpm.ClientConfig{TrustDomain: td}) // /dev/tpmrm0
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	payload, err := client.Payload(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := srv.Attest(ctx, td, payload, func(ctx context.Context, challenge []byte) ([]byte, error) {
		return client.Respond(ctx, challenge)
	})
	if err != nil {
		fmt.Println(err) // errors.Is(err, attest.ErrNodeRejected) for a TPM not trusted
		return
	}
	fmt.Println(res.AgentID, res.Selectors)
	_ = attest.ErrNodeRejected
}
