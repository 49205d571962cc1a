package index_test

import (
	"context"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func Example() {
	ctx := context.Background()
	store := memstore.New(memstore.Config{})
	agent := spiffeid.RequireFromString("spiffe://example.org/agent/node1")
	for path, sels := range map[string][]attest.Selector{
		"/web": {{Type: "unix", Value: "uid:1000"}},
		"/db":  {{Type: "unix", Value: "uid:1000"}, {Type: "unix", Value: "gid:50"}},
	} {
		_, err := store.Create(ctx, registry.Entry{
			SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org" + path),
			ParentID:  agent,
			Selectors: sels,
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}

	idx, err := index.New(ctx, store, index.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The workload lacks gid:50, so it does not get /db.
	for _, e := range idx.ForWorkload([]attest.Selector{{Type: "unix", Value: "uid:1000"}}) {
		fmt.Println(e.SPIFFEID)
	}

	// Later writes reach the index through the change feed.
	_, err = store.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/batch"),
		ParentID:  agent,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := idx.Sync(ctx) // or run idx.Run(ctx) in a goroutine
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("applied", n, "change; agent serves", len(idx.ForAgent(agent, nil)), "entries")
	// Output:
	// spiffe://example.org/web
	// applied 1 change; agent serves 3 entries
}
