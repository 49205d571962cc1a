package broadcast

import "sync"

// Topics is a [Hub] whose subscribers each choose which changes wake them:
// changes and subscriptions carry a bit mask of topics, and a change wakes
// the subscribers whose mask it shares a bit with. The zero value is ready
// to use and safe for concurrent use.
type Topics struct {
	mu   sync.Mutex
	subs map[chan struct{}]uint64
}

// Subscribe returns a channel that receives a value after each Notify of
// any of the topics in mask (capacity 1, never closed), and a function that
// ends the subscription; it is idempotent. A subscription with an empty
// mask is never woken.
func (t *Topics) Subscribe(mask uint64) (updates <-chan struct{}, unsubscribe func()) {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	if t.subs == nil {
		t.subs = make(map[chan struct{}]uint64)
	}
	t.subs[ch] = mask
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		delete(t.subs, ch)
		t.mu.Unlock()
	}
}

// Notify wakes every subscriber of any of the topics in mask whose channel
// is empty; it never blocks.
func (t *Topics) Notify(mask uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch, m := range t.subs {
		if m&mask == 0 {
			continue
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
