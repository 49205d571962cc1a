package clockstep

import "time"

// Interval is how often an issuer's loop looks for a step of the clock.
const Interval = time.Second

// MaxDrift is how far the clock may move from the monotonic clock between
// two checks before it counts as stepped.
const MaxDrift = time.Second

// Detector notices steps of a wall clock. It is not safe for concurrent
// use.
type Detector struct {
	now        func() time.Time
	wall, mono time.Time
}

// New returns a Detector of the clock now, from now on.
func New(now func() time.Time) *Detector {
	return &Detector{now: now, wall: now().Round(0), mono: time.Now()}
}

// Check returns how far the clock was stepped since the last check (or
// New), or 0 when it drifted less than MaxDrift.
func (d *Detector) Check() time.Duration {
	wall, mono := d.now().Round(0), time.Now()
	drift := wall.Sub(d.wall) - mono.Sub(d.mono)
	d.wall, d.mono = wall, mono
	if drift.Abs() < MaxDrift {
		return 0
	}
	return drift
}
