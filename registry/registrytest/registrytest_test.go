package registrytest_test

import (
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/registrytest"
)

// TestRun runs the suite against the in-memory store, the reference
// implementation.
func TestRun(t *testing.T) {
	registrytest.Run(t, func(*testing.T) registry.Store { return memstore.New(memstore.Config{}) })
}

// TestRunBatch runs the batch suite against the in-memory store.
func TestRunBatch(t *testing.T) {
	registrytest.RunBatch(t, func(*testing.T) registrytest.BatchStore { return memstore.New(memstore.Config{}) })
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// TestRunDurable treats one memstore as a database that survives restarts.
func TestRunDurable(t *testing.T) {
	s := memstore.New(memstore.Config{})
	registrytest.RunDurable(t, func(*testing.T) (registry.Store, io.Closer) { return s, nopCloser{} })
}

// TestRunNode runs the node-side suite against the in-memory store.
func TestRunNode(t *testing.T) {
	registrytest.RunNode(t, func(*testing.T) registrytest.NodeStore { return memstore.New(memstore.Config{}) })
}

func TestUnixPath(t *testing.T) {
	for _, n := range []int{2, 255, 256, 4095, registrytest.PathMax} {
		p := registrytest.UnixPath(n)
		assert.Len(t, p, n)
		assert.True(t, utf8.ValidString(p))
		assert.Equal(t, p, registrytest.UnixPath(n), "the same for the same length")
		for _, comp := range strings.Split(p[1:], "/") {
			assert.NotEmpty(t, comp)
			assert.LessOrEqual(t, len(comp), 255)
		}
		require.NoError(t, attest.Selector{Type: "unix", Value: "path:" + p + " (deleted)"}.Validate())
	}
}

// TestRunNotify runs the notification suite against the in-memory store.
func TestRunNotify(t *testing.T) {
	registrytest.RunNotify(t, func(*testing.T) registrytest.NotifyStore { return memstore.New(memstore.Config{}) })
}
