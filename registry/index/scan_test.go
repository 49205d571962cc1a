package index_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// scanner is a store that is also an index.Scanner: it yields the
// store's entries from ScanEntries, or fails with err, and fails List so
// that a build that pages instead of scanning is seen.
type scanner struct {
	*memstore.Store
	err     error
	scanned int
	// count is what CountEntries returns, with countErr.
	count    int
	countErr error
	counted  int
}

func (s *scanner) CountEntries(context.Context) (int, error) {
	s.counted++
	return s.count, s.countErr
}

func (s *scanner) List(context.Context, registry.Filter, registry.Page) ([]registry.Entry, string, error) {
	return nil, "", errors.New("listed instead of scanned")
}

func (s *scanner) ScanEntries(ctx context.Context, yield func(registry.Entry) error) error {
	s.scanned++
	if s.err != nil {
		return s.err
	}
	all, _, err := s.Store.List(ctx, registry.Filter{}, registry.Page{})
	if err != nil {
		return err
	}
	for _, e := range all {
		if err := yield(e); err != nil {
			return err
		}
	}
	return nil
}

// Property: New reads a Scanner in one pass, and the index built so
// answers as one built by pages.
func TestNewScans(t *testing.T) {
	s := &scanner{Store: memstore.New(memstore.Config{})}
	a, b := sel("unix", "uid:1"), sel("k8s", "ns:prod")
	create(t, s.Store, "/a", "/agent", a)
	create(t, s.Store, "/ab", "/agent", a, b)
	create(t, s.Store, "/b", "/other", b)
	s.count = 3
	idx, err := index.New(t.Context(), s, index.Config{})
	require.NoError(t, err)
	assert.Equal(t, 1, s.counted)
	assert.Equal(t, 1, s.scanned)
	assert.Equal(t, 3, idx.Len())
	assert.Equal(t, []string{"/a", "/ab"}, paths(idx.ForAgent(id("/agent"), nil)))
	assert.Equal(t, []string{"/b"}, paths(idx.ForWorkload([]attest.Selector{b})))
	assert.Equal(t, []string{"/a", "/ab", "/b"}, paths(idx.ForWorkload([]attest.Selector{a, b})))

	// A change made after the scan is applied from the change feed.
	create(t, s.Store, "/c", "/agent", a)
	_, err = idx.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []string{"/a", "/ab", "/c"}, paths(idx.ForAgent(id("/agent"), nil)))
}

// Property: a scan that fails fails New, with the scan's error.
func TestNewScanFails(t *testing.T) {
	boom := errors.New("boom")
	_, err := index.New(t.Context(), &scanner{Store: memstore.New(memstore.Config{}), err: boom}, index.Config{})
	require.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "index: reading entries")

	_, err = index.New(t.Context(), &scanner{Store: memstore.New(memstore.Config{}), countErr: boom}, index.Config{})
	require.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "index: counting entries")
}

// Property: a count that is wrong, negative or absurdly large, only
// sizes the index: it holds the entries there are, and finds them by
// their selectors (the table of selectors sized for a huge count is
// copied to its size after the read).
func TestNewWrongCount(t *testing.T) {
	for _, count := range []int{-5, 0, 1, 1 << 40} {
		s := &scanner{Store: memstore.New(memstore.Config{}), count: count}
		create(t, s.Store, "/a", "/agent", sel("unix", "uid:1"))
		create(t, s.Store, "/b", "/agent", sel("unix", "uid:2"))
		idx, err := index.New(t.Context(), s, index.Config{})
		require.NoError(t, err, count)
		assert.Equal(t, 2, idx.Len(), count)
		assert.Equal(t, []string{"/b"}, paths(idx.ForWorkload([]attest.Selector{sel("unix", "uid:2")})), count)
	}
}
