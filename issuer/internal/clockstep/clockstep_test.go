package clockstep

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	d := New(now)
	if got := d.Check(); got != 0 {
		t.Fatalf("a clock that follows the monotonic one stepped by %v", got)
	}
	offset.Store(int64(time.Hour))
	if got := d.Check(); got < time.Hour-MaxDrift || got > time.Hour+MaxDrift {
		t.Fatalf("a step of an hour ahead was seen as %v", got)
	}
	if got := d.Check(); got != 0 {
		t.Fatalf("the step was seen twice: %v", got)
	}
	offset.Store(int64(-time.Hour))
	if got := d.Check(); got > -2*time.Hour+MaxDrift || got < -2*time.Hour-MaxDrift {
		t.Fatalf("a step of two hours back was seen as %v", got)
	}
	offset.Add(int64(MaxDrift / 2))
	if got := d.Check(); got != 0 {
		t.Fatalf("a drift under MaxDrift counted as a step: %v", got)
	}
}
