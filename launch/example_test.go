package launch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A launcher makes a launch, over the launcher socket, for the sandbox it
// starts; the sandbox's handle is redeemed once (package server redeems it
// at the token exchange endpoint, for an SVID).
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "launch")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	// The server's side.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: memstore.New(memstore.Config{})})
	if err != nil {
		fmt.Println(err)
		return
	}
	lis, err := ls.Listen(filepath.Join(dir, "launch.sock"))
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- ls.Serve(ctx, lis) }()
	defer func() { cancel(); <-served }()

	// The launcher's side.
	c := launch.Dial(filepath.Join(dir, "launch.sock"))
	defer c.Close()
	l, err := c.Launch(ctx, launch.Params{
		SPIFFEID: spiffeid.RequireFromPath(td, "/sandbox/42"),
		TTL:      10 * time.Minute,
		Hint:     "job 42",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The sandbox is started with l.Handle, and trades it for an SVID.
	entry, err := ls.Redeem(ctx, l.Handle, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("the sandbox is", entry.SPIFFEID)
	_, err = ls.Redeem(ctx, l.Handle, nil)
	fmt.Println("redeemed again:", errors.Is(err, exchange.ErrInvalidToken))
	// The launcher ends it early, or it ends with its TTL.
	fmt.Println("ended:", c.End(ctx, l.ID) == nil)
	// Output:
	// the sandbox is spiffe://example.org/sandbox/42
	// redeemed again: true
	// ended: true
}
