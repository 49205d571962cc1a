package launch_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A launcher makes a launch for the sandbox it starts; the sandbox's
// handle is redeemed once (package server redeems it at the token
// exchange endpoint, for an SVID).
func Example() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: memstore.New(memstore.Config{})})
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := ls.Launch(ctx, launch.Params{
		SPIFFEID: spiffeid.RequireFromPath(td, "/sandbox/42"),
		TTL:      10 * time.Minute,
		Hint:     "job 42",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The sandbox is started with l.Handle, and trades it for an SVID.
	entry, err := ls.Redeem(ctx, l.Handle)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("the sandbox is", entry.SPIFFEID)
	_, err = ls.Redeem(ctx, l.Handle)
	fmt.Println("redeemed again:", errors.Is(err, exchange.ErrInvalidToken))
	// The launcher ends it early, or it ends with its TTL.
	fmt.Println("ended:", ls.End(ctx, l.ID) == nil)
	// Output:
	// the sandbox is spiffe://example.org/sandbox/42
	// redeemed again: true
	// ended: true
}
