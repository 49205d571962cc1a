package awsiid_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/awsiid"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A server admitting the instances of one account, in two regions, with
// AWS's shipped certificates. A payload whose signature is not AWS's is
// refused with attest.ErrNodeRejected.
func ExampleNewServer() {
	srv, err := awsiid.NewServer(awsiid.ServerConfig{
		AccountIDs: []string{"123456789012"},
		Regions:    []string{"us-east-1", "eu-west-1"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	td := spiffeid.RequireTrustDomainFromString("example.org")
	forged := []byte(`{"document":"{\"accountId\":\"123456789012\",\"region\":\"us-east-1\",\"instanceId\":\"i-0123456789abcdef0\"}","signature":"AAAA"}`)
	_, err = srv.Attest(context.Background(), td, forged, nil)
	fmt.Println(errors.Is(err, attest.ErrNodeRejected))
	fmt.Println(err)
	// Output:
	// true
	// awsiid: no certificate for the signature form in region us-east-1
}

// The agent side, on an EC2 instance: the payload is fetched again at
// each attestation, through IMDSv2.
func ExampleNewClient() {
	client, err := awsiid.NewClient(awsiid.ClientConfig{
		// Endpoint: "http://169.254.169.254", the default
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(client.Type())
	// Output: aws_iid
}
