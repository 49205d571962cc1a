package issuer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// An issuer serving one workload, this process, on a unix socket.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	dir, err := os.MkdirTemp("", "issuer")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ca, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	if err != nil {
		fmt.Println(err)
		return
	}
	store := memstore.New(memstore.Config{})
	attestor, err := unix.New(unix.Config{SkipHash: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	iss, err := issuer.New(ctx, issuer.Config{
		Trust:    issuer.TrustFromAuthority(ca),
		Signer:   issuer.NewLocalSigner(ca),
		Registry: store,
		Attestor: attestor,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer iss.Close()
	go iss.Run(ctx)

	// The Workload API, served by package endpoint with the issuer as its
	// handler.
	srv, err := endpoint.New(endpoint.Config{Handler: iss})
	if err != nil {
		fmt.Println(err)
		return
	}
	lis, err := endpoint.ListenUnix(filepath.Join(dir, "workload.sock"), 0o700)
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(ctx, lis)
	addr := "unix://" + lis.Addr().String()

	// Processes running as our user get spiffe://example.org/web.
	_, err = store.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  spiffeid.RequireFromPath(td, "/issuer"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := iss.Sync(ctx); err != nil {
		fmt.Println(err)
		return
	}

	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(svid.ID)
	// Output: spiffe://example.org/web
}
