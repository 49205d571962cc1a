package endpoint_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// An in-process CA mints an X509-SVID for spiffe://example.org/web.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	if err != nil {
		fmt.Println(err)
		return
	}
	authority, _ := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := spiffeid.RequireFromPath(td, "/web")
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Every process of this user gets that SVID.
	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	err = handler.Set(strconv.Itoa(os.Getuid()), &endpoint.Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain, PrivateKey: key}},
		Bundles:     []*spiffebundle.Bundle{spiffebundle.FromX509Authorities(td, authority.Chain())},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	dir, _ := os.MkdirTemp("", "wl")
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "agent.sock")
	lis, err := endpoint.ListenUnix(socket, 0o777)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, _ := endpoint.New(endpoint.Config{Handler: handler})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()

	// A workload of this user fetches its SVID with the Workload API client.
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+socket))
	if err != nil {
		fmt.Println(err)
	} else {
		fmt.Println(svid.ID)
	}

	cancel()
	fmt.Println(<-done)
	// Output:
	// spiffe://example.org/web
	// <nil>
}
