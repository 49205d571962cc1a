package registrytest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
)

// PathMax is PATH_MAX on Linux: no path the kernel resolves is longer.
const PathMax = 4096

// UnixPath returns an absolute Linux path of n bytes (n > 1): components of
// at most 255 bytes (NAME_MAX) in mixed ASCII and multi-byte UTF-8,
// pseudo-random so that no database can shrink it by compression, and the
// same for the same n. The unix attestor reports an executable path, with
// " (deleted)" appended when the file was removed, as the selector
// "unix:path:<path>".
func UnixPath(n int) string {
	const nameMax = 255
	r := rand.New(rand.NewPCG(uint64(n), nameMax))
	var b strings.Builder
	for b.Len() < n {
		rest := n - b.Len() - 1 // for this component and those after it
		c := min(nameMax, rest)
		if rest-c == 1 {
			c-- // no room would be left for a component after a '/'
		}
		b.WriteByte('/')
		b.WriteString(randomText(r, c))
	}
	return b.String()
}

// randomText returns n bytes of pseudo-random UTF-8 text without control
// characters or '/'.
func randomText(r *rand.Rand, n int) string {
	runes := []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:é€日本😀")
	var b strings.Builder
	for b.Len() < n {
		c := runes[r.IntN(len(runes))]
		if b.Len()+len(string(c)) > n {
			c = 'x'
		}
		b.WriteRune(c)
	}
	return b.String()
}

// longestSelectors returns n distinct selectors with types and values at
// the limits of attest.Selector.
func longestSelectors(n int) []attest.Selector {
	r := rand.New(rand.NewPCG(uint64(n), 8192))
	sels := make([]attest.Selector, n)
	for i := range sels {
		sels[i] = attest.Selector{Type: strings.Repeat("t", attest.MaxTypeLength-1) + string(rune('a'+i%26)),
			Value: randomText(r, attest.MaxValueLength)}
	}
	return sels
}

// unixPathSelectors are the selectors of a workload running the executable
// at a path of PathMax bytes, since removed: longer than any the kernel
// reports.
func unixPathSelectors() []attest.Selector {
	return []attest.Selector{
		{Type: "unix", Value: "uid:1000"},
		{Type: "unix", Value: "path:" + UnixPath(PathMax) + " (deleted)"},
	}
}

// testLongestSelectors checks that entries with selectors at the limits of
// attest.Selector are stored, found and returned unchanged.
func testLongestSelectors(t *testing.T, s registry.Store) {
	ctx := t.Context()
	head, err := s.Head(ctx)
	require.NoError(t, err)
	cases := []registry.Entry{
		entry("/long/unix", "/agent", unixPathSelectors()...),
		entry("/long/all", "/agent", longestSelectors(registry.MaxSelectors)...),
	}
	for _, in := range cases {
		want := in.Clone()
		created, err := s.Create(ctx, in)
		require.NoError(t, err, in.SPIFFEID.String())
		assert.ElementsMatch(t, want.Selectors, created.Selectors)

		got, err := s.Get(ctx, created.ID)
		require.NoError(t, err)
		assert.Equal(t, created, got, "the selectors come back unchanged")

		for _, m := range []registry.MatchMode{registry.MatchExact, registry.MatchSubset, registry.MatchSuperset, registry.MatchAny} {
			f := registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: want.Selectors, Match: m}}
			assert.Equal(t, []registry.Entry{created}, listAll(t, s, f, 0), "match mode %d", m)
		}
		_, err = s.Create(ctx, want)
		require.ErrorIs(t, err, registry.ErrAlreadyExists, "similar entries are found with the longest selectors too")
	}
	evs, err := s.Changes(ctx, head, 10)
	require.NoError(t, err)
	require.Len(t, evs, len(cases))
	for i, ev := range evs {
		assert.Equal(t, cases[i].SPIFFEID, ev.After.SPIFFEID)
		assert.ElementsMatch(t, cases[i].Selectors, ev.After.Selectors, "the change feed keeps the selectors unchanged")
	}

	// One byte more than a limit is refused by every store.
	over := entry("/long/over", "/agent", attest.Selector{Type: "unix", Value: strings.Repeat("v", attest.MaxValueLength+1)})
	_, err = s.Create(ctx, over)
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorIs(t, err, attest.ErrInvalidSelector)
}

// testAgentLongestSelectors checks that agent records with selectors at the
// limits of attest.Selector are stored and returned unchanged.
func testAgentLongestSelectors(t *testing.T, s NodeStore) {
	ctx := t.Context()
	for _, sels := range [][]attest.Selector{unixPathSelectors(), longestSelectors(registry.MaxSelectors)} {
		in := agent("/spire/agent/long", sels...)
		got, err := s.PutAgent(ctx, in)
		require.NoError(t, err)
		assert.ElementsMatch(t, sels, got.Selectors)
		again, err := s.GetAgent(ctx, in.ID)
		require.NoError(t, err)
		assert.Equal(t, got, again, "the selectors come back unchanged")
	}
	over := agent("/spire/agent/over", attest.Selector{Type: strings.Repeat("t", attest.MaxTypeLength+1), Value: "v"})
	_, err := s.PutAgent(ctx, over)
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.ErrorIs(t, err, attest.ErrInvalidSelector)
}
