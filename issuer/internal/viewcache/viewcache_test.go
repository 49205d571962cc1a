package viewcache

import (
	"strconv"
	"testing"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// Callers that see the same SVIDs and bundles share one Snapshot; another
// view, or the same key with other SVIDs, gets its own.
func TestSnapshotsAreShared(t *testing.T) {
	b := spiffebundle.New(td)
	s1, s2 := &endpoint.RawX509SVID{}, &endpoint.RawX509SVID{}
	var c Cache
	v := View{Key: "a", SVIDs: []*endpoint.RawX509SVID{s1}, Bundles: []*spiffebundle.Bundle{b}}
	first := c.Snapshot(td, v)
	if first.TrustDomain != td || first.RawX509SVIDs[0] != s1 || first.Bundles[0] != b {
		t.Fatalf("snapshot %+v is not the view's", first)
	}
	same := View{Key: "a", SVIDs: []*endpoint.RawX509SVID{s1}, Bundles: []*spiffebundle.Bundle{b}}
	if got := c.Snapshot(td, same); got != first {
		t.Fatal("an equal view got another snapshot")
	}
	renewed := View{Key: "a", SVIDs: []*endpoint.RawX509SVID{s2}, Bundles: []*spiffebundle.Bundle{b}}
	second := c.Snapshot(td, renewed)
	if second == first || second.RawX509SVIDs[0] != s2 {
		t.Fatal("a view with a renewed SVID got the old snapshot")
	}
	// Offering an equal view's snapshot keeps the one cached.
	c.Offer(renewed, first)
	if got := c.Snapshot(td, renewed); got != second {
		t.Fatal("an offer replaced the cached snapshot")
	}
	c.Clear()
	if c.Len() != 0 {
		t.Fatal("Clear left views")
	}
	// Offered after a clear, a stream's snapshot is shared again.
	c.Offer(renewed, second)
	if got := c.Snapshot(td, renewed); got != second {
		t.Fatal("the offered snapshot was not shared")
	}
}

// A full cache is emptied before it takes another view.
func TestCacheIsBounded(t *testing.T) {
	var c Cache
	for k := range MaxViews {
		c.Offer(View{Key: strconv.Itoa(k)}, &endpoint.Snapshot{})
	}
	if c.Len() != MaxViews {
		t.Fatalf("%d views, want %d", c.Len(), MaxViews)
	}
	c.Offer(View{Key: "one more"}, &endpoint.Snapshot{})
	if c.Len() != 1 {
		t.Fatalf("%d views after the cache was full, want 1", c.Len())
	}
}
