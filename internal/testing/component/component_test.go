package component_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

func TestRequired(t *testing.T) {
	t.Setenv(component.EnvRequire, "docker,uids")
	assert.True(t, component.Required("uids"))
	assert.True(t, component.Required("docker"))
	assert.False(t, component.Required("kube"))
	assert.False(t, component.Required("uid"), "whole names only")
	t.Setenv(component.EnvRequire, "")
	assert.False(t, component.Required("uids"))
}

// recorder is a testing.TB that records how a test would have ended.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestUnavailable(t *testing.T) {
	t.Setenv(component.EnvRequire, "postgres,docker")
	r := &recorder{TB: t}
	component.Unavailable(r, "docker", "no dockerd")
	assert.Equal(t, "docker is required ($SPIFFEKIT_TEST_REQUIRE) but cannot run here: no dockerd", r.failed)
	assert.Empty(t, r.skipped)

	t.Setenv(component.EnvRequire, "")
	r = &recorder{TB: t}
	component.Unavailable(r, "docker", "no dockerd")
	assert.Equal(t, "docker cannot run here: no dockerd", r.skipped)
	assert.Empty(t, r.failed)
}
