package agent

import (
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
