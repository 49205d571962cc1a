package leaktest

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = append(r.failed, format)
}

func TestCheckPassesWhenGoroutinesEnd(t *testing.T) {
	r := &recorder{TB: t}
	done := Check(r)
	stop := make(chan struct{})
	ended := make(chan struct{})
	go func() { <-stop; close(ended) }()
	close(stop)
	<-ended
	done()
	if len(r.failed) != 0 {
		t.Fatalf("a goroutine that ended was reported: %v", r.failed)
	}
}

func TestCheckReportsALeak(t *testing.T) {
	r := &recorder{TB: t}
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	stop := make(chan struct{})
	go func() { <-stop }()
	verify(r, 200*time.Millisecond, opts...)
	close(stop)
	if len(r.failed) != 1 || !strings.Contains(r.failed[0], "leaked") {
		t.Fatalf("a leaked goroutine was not reported: %v", r.failed)
	}
}

func TestCheckIgnoresEarlierGoroutines(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	go func() { <-stop }()
	r := &recorder{TB: t}
	Check(r)()
	if len(r.failed) != 0 {
		t.Fatalf("a goroutine started before Check was reported: %v", r.failed)
	}
}
