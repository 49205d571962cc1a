package memstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func Example() {
	ctx := context.Background()
	s := memstore.New(memstore.Config{})
	e, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/web"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent/node1"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Two writers read revision 1; the second update loses.
	first, second := e, e
	first.Hint = "first"
	second.Hint = "second"
	if _, err := s.Update(ctx, first); err != nil {
		fmt.Println(err)
		return
	}
	_, err = s.Update(ctx, second)
	fmt.Println("second update conflicts:", errors.Is(err, registry.ErrConflict))

	// The change feed lists every write in order.
	events, err := s.Changes(ctx, 0, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range events {
		fmt.Println(ev.Seq, ev.Op, ev.Entry().SPIFFEID, ev.Entry().Revision)
	}
	// Output:
	// second update conflicts: true
	// 1 create spiffe://example.org/web 1
	// 2 update spiffe://example.org/web 2
}
