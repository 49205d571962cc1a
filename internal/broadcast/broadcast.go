// Package broadcast tells any number of subscribers that something changed.
// It is the Subscribe behind the kit's CA, trust and federation sources:
// each subscriber has a channel of capacity 1 that a change fills without
// ever blocking, so that several changes coalesce into one wake-up, after
// which the subscriber reads the current state.
package broadcast

import "sync"

// Hub is a set of subscribers. The zero value is ready to use and safe for
// concurrent use.
type Hub struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives a value after each Notify
// (capacity 1, never closed), and a function that ends the subscription;
// it is idempotent.
func (h *Hub) Subscribe() (updates <-chan struct{}, unsubscribe func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = make(map[chan struct{}]struct{})
	}
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// Notify wakes every subscriber whose channel is empty; it never blocks.
func (h *Hub) Notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
