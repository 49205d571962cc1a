package index

// ExpiringLen returns the length of x's queue of expiries, stale items
// included.
func ExpiringLen(x *Index) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.expiring)
}
