package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/examples/spiffe-server/cli"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

type noTokens struct{}

func (noTokens) GenerateToken(context.Context, time.Duration, spiffeid.ID) (string, time.Time, error) {
	return "", time.Time{}, errors.New("tokens are not issued here")
}

func ExampleAdmin() {
	dir, err := os.MkdirTemp("", "servercli-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	store := memstore.New(memstore.Config{})
	srv, err := adminserver.New(adminserver.Config{
		TrustDomain: td, Entries: store, Agents: store, Bundles: store, Tokens: noTokens{},
		Bundle: func() *spiffebundle.Bundle { return spiffebundle.New(td) },
	})
	if err != nil {
		panic(err)
	}
	socket := filepath.Join(dir, "admin.sock")
	lis, err := adminserver.ListenUnix(socket)
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	defer func() { stop(); <-done }()

	var out bytes.Buffer
	code := cli.Admin(ctx, []string{"entry", "create", "-admin-socket", socket,
		"-parent-id", "spiffe://example.org/agent/node1",
		"-spiffe-id", "spiffe://example.org/web",
		"-selector", "unix:uid:1000"}, &out, os.Stderr)
	fmt.Println("exit", code)
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] { // skip the random entry ID
		fmt.Println(line)
	}
	// Output:
	// exit 0
	// SPIFFE ID:      spiffe://example.org/web
	// Parent ID:      spiffe://example.org/agent/node1
	// Revision:       1
	// X509-SVID TTL:  default
	// JWT-SVID TTL:   default
	// Selector:       unix:uid:1000
}
