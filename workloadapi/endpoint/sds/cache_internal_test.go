package sds

import (
	"fmt"
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestViewCache: a snapshot seen again gets the same view, and the cache
// keeps the last maxCachedViews snapshots only.
func TestViewCache(t *testing.T) {
	var c viewCache
	td := spiffeid.RequireTrustDomainFromString("example.org")
	snaps := make([]*endpoint.Snapshot, maxCachedViews+1)
	for i := range snaps {
		snaps[i] = &endpoint.Snapshot{TrustDomain: td}
	}
	first, err := c.get(snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.get(snaps[0]); again != first {
		t.Fatal("a snapshot seen again got a new view")
	}
	for _, s := range snaps[1:] {
		if _, err := c.get(s); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.views) != maxCachedViews {
		t.Fatalf("%d views kept", len(c.views))
	}
	if again, _ := c.get(snaps[0]); again == first {
		t.Fatal("the oldest view was kept")
	}

	// The memo of a view is bounded too.
	v := c.views[0]
	built := 0
	for i := range maxMemo + 10 {
		v.memoized(memoKey{name: fmt.Sprint(i)}, func() (resource, bool, error) { built++; return resource{}, false, nil })
	}
	v.memoized(memoKey{name: "0"}, func() (resource, bool, error) { built++; return resource{}, false, nil })
	if built != maxMemo+10 || len(v.memo) != maxMemo {
		t.Fatalf("built %d, kept %d", built, len(v.memo))
	}
}
