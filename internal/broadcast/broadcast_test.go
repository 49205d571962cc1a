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
