package agent

import (
	"context"
	"testing"
	"time"
)

// SetWorkloadsSaveInterval sets how often the agents of the test save
// their workloads file, until the test ends.
func SetWorkloadsSaveInterval(t testing.TB, d time.Duration) {
	old := workloadsSaveInterval
	workloadsSaveInterval = d
	t.Cleanup(func() { workloadsSaveInterval = old })
}

// Renew renews the agent SVID once, as the agent does at half its life.
func (a *Agent) Renew(ctx context.Context) error { return a.renew(ctx) }

// SetReleaseAfterSave sets the size of a workloads file from which the
// agents of the test return their free heap to the system after writing
// it, until the test ends.
func SetReleaseAfterSave(t testing.TB, size int64) {
	old := releaseAfterSave
	releaseAfterSave = size
	t.Cleanup(func() { releaseAfterSave = old })
}
