package admin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// noTokens stands in for a join token issuer.
type noTokens struct{}

func (noTokens) GenerateToken(context.Context, time.Duration, spiffeid.ID) (string, time.Time, error) {
	return "", time.Time{}, errors.New("tokens are not issued here")
}

func Example() {
	dir, err := os.MkdirTemp("", "admin-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	td := spiffeid.RequireTrustDomainFromString("example.org")
	store := memstore.New(memstore.Config{})
	srv, err := adminserver.New(adminserver.Config{
		TrustDomain: td,
		Entries:     store,
		Agents:      store,
		Bundles:     store,
		Tokens:      noTokens{},
		Bundle:      func() *spiffebundle.Bundle { return spiffebundle.New(td) },
	})
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "admin.sock")
	lis, err := adminserver.ListenUnix(path)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() { stop(); <-done }()

	c := admin.Dial(path)
	defer c.Close()
	e, err := c.CreateEntry(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  spiffeid.RequireFromPath(td, "/agent/node1"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(e.SPIFFEID, e.Revision)

	_, err = c.SetFederatedBundle(ctx, td, []byte(`{"keys":[]}`))
	fmt.Println(errors.Is(err, registry.ErrInvalid))
	// Output:
	// spiffe://example.org/web 1
	// true
}
