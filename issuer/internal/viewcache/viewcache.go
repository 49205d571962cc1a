package viewcache

import (
	"slices"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// MaxViews bounds the cache; it is emptied when full.
const MaxViews = 4096

// View is what one caller sees, before it becomes an endpoint.Snapshot.
type View struct {
	// Key names the entries of SVIDs, in order: the cache's key.
	Key string
	// SVIDs are the caller's X509-SVIDs.
	SVIDs []*endpoint.RawX509SVID
	// Bundles are the bundles it trusts: its trust domain's first.
	Bundles []*spiffebundle.Bundle
}

// Equal reports whether v and o hold the same SVIDs and bundles.
func (v View) Equal(o View) bool {
	return slices.Equal(v.SVIDs, o.SVIDs) && slices.Equal(v.Bundles, o.Bundles)
}

// cached is a View with the Snapshot made of it.
type cached struct {
	v    View
	snap *endpoint.Snapshot
}

// Cache holds the Snapshots of the views served since it was last
// cleared, by key. The zero value is an empty cache. It is not safe for
// concurrent use: the issuer's lock guards it.
type Cache struct {
	views map[string]cached
}

// Snapshot returns the Snapshot of v, of trust domain td: the cached one
// when an equal view was served since the last Clear, else a new one,
// which it caches.
func (c *Cache) Snapshot(td spiffeid.TrustDomain, v View) *endpoint.Snapshot {
	if e, ok := c.views[v.Key]; ok && e.v.Equal(v) {
		return e.snap
	}
	snap := &endpoint.Snapshot{TrustDomain: td, RawX509SVIDs: v.SVIDs, Bundles: v.Bundles}
	c.Offer(v, snap)
	return snap
}

// Offer offers snap, the Snapshot of v, to the callers that will see v,
// unless the cache already holds one for v.
func (c *Cache) Offer(v View, snap *endpoint.Snapshot) {
	if e, ok := c.views[v.Key]; ok && e.v.Equal(v) {
		return
	}
	if c.views == nil {
		c.views = make(map[string]cached)
	}
	if len(c.views) >= MaxViews {
		clear(c.views)
	}
	c.views[v.Key] = cached{v: v, snap: snap}
}

// Clear empties the cache: the views served until now may hold SVIDs
// replaced since.
func (c *Cache) Clear() { clear(c.views) }

// Len returns how many views the cache holds.
func (c *Cache) Len() int { return len(c.views) }
