package broadcast

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHub(t *testing.T) {
	var h Hub
	h.Notify() // no subscriber: nothing happens
	a, stopA := h.Subscribe()
	b, stopB := h.Subscribe()
	h.Notify()
	h.Notify() // coalesces: the channels hold one value each
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("a subscriber was not notified")
		}
		select {
		case <-ch:
			t.Fatal("two notifications were not coalesced")
		default:
		}
	}
	stopA()
	stopA() // idempotent
	h.Notify()
	select {
	case <-a:
		t.Fatal("an ended subscription was notified")
	default:
	}
	_, ok := <-b
	assert.True(t, ok, "the other subscriber still is")
	stopB()
}

func TestTopics(t *testing.T) {
	var h Topics
	h.Notify(1) // no subscriber: nothing happens
	one, stopOne := h.Subscribe(1)
	two, stopTwo := h.Subscribe(2)
	both, stopBoth := h.Subscribe(1 | 2)
	none, stopNone := h.Subscribe(0)
	defer stopTwo()
	defer stopBoth()
	defer stopNone()
	ready := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	h.Notify(1)
	h.Notify(1) // coalesces
	assert.True(t, ready(one))
	assert.False(t, ready(one), "two notifications were not coalesced")
	assert.False(t, ready(two), "a subscriber of another topic was woken")
	assert.True(t, ready(both))
	assert.False(t, ready(none))

	h.Notify(2 | 4)
	assert.False(t, ready(one))
	assert.True(t, ready(two))
	assert.True(t, ready(both))

	h.Notify(^uint64(0))
	assert.False(t, ready(none), "an empty mask was woken")
	assert.True(t, ready(one))
	assert.True(t, ready(both))

	stopOne()
	stopOne() // idempotent
	h.Notify(1)
	assert.False(t, ready(one), "an ended subscription was woken")
	assert.True(t, ready(both))
}
