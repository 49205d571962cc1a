package attest_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

func sel(s string) attest.Selector {
	x, err := attest.ParseSelector(s)
	if err != nil {
		panic(err)
	}
	return x
}

func set(ss ...string) attest.Selectors {
	var out []attest.Selector
	for _, s := range ss {
		out = append(out, sel(s))
	}
	return attest.NewSelectors(out...)
}

func TestNewSelectorsSortsAndDeduplicates(t *testing.T) {
	in := []attest.Selector{sel("unix:uid:1"), sel("k8s:ns:a"), sel("unix:gid:2"), sel("unix:uid:1"), sel("k8s:ns:a")}
	s := attest.NewSelectors(in...)
	assert.Equal(t, 3, s.Len())
	assert.Equal(t, []attest.Selector{sel("k8s:ns:a"), sel("unix:gid:2"), sel("unix:uid:1")}, s.Slice())
	assert.Equal(t, s.Slice(), slices.Collect(s.All()))
	assert.Equal(t, "[k8s:ns:a unix:gid:2 unix:uid:1]", s.String())

	// The input and the returned slices are copies.
	in[0] = sel("x:y")
	got := s.Slice()
	got[0] = sel("x:y")
	assert.Equal(t, "[k8s:ns:a unix:gid:2 unix:uid:1]", s.String())

	var zero attest.Selectors
	assert.Equal(t, 0, zero.Len())
	assert.Equal(t, "[]", zero.String())
	assert.True(t, attest.NewSelectors().Equal(zero))
}

func TestSelectorsContains(t *testing.T) {
	s := set("unix:uid:1", "unix:gid:2", "k8s:ns:a")
	assert.True(t, s.Contains(sel("unix:gid:2")))
	assert.False(t, s.Contains(sel("unix:gid:3")))
	assert.False(t, s.Contains(attest.Selector{Type: "unix", Value: "uid"}))
	assert.False(t, attest.Selectors{}.Contains(sel("unix:gid:2")))
}

func TestSelectorsContainsAll(t *testing.T) {
	workload := set("unix:uid:1", "unix:gid:2", "unix:path:/bin/x", "k8s:ns:a")
	tests := []struct {
		name  string
		entry attest.Selectors
		want  bool
	}{
		{name: "empty entry", entry: set(), want: true},
		{name: "one", entry: set("unix:gid:2"), want: true},
		{name: "all", entry: workload, want: true},
		{name: "first and last", entry: set("k8s:ns:a", "unix:uid:1"), want: true},
		{name: "missing one", entry: set("unix:uid:1", "unix:uid:2"), want: false},
		{name: "before all", entry: set("a:b"), want: false},
		{name: "after all", entry: set("zz:b"), want: false},
		{name: "superset", entry: workload.Union(set("unix:user:root")), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, workload.ContainsAll(tt.entry))
		})
	}
	assert.False(t, attest.Selectors{}.ContainsAll(set("a:b")))
}

func TestSelectorsEqualAndUnion(t *testing.T) {
	a := set("unix:uid:1", "unix:gid:2")
	b := set("unix:gid:2", "unix:uid:1", "unix:uid:1")
	assert.True(t, a.Equal(b))
	assert.False(t, a.Equal(set("unix:uid:1")))

	u := a.Union(set("k8s:ns:a", "unix:uid:1"))
	assert.Equal(t, "[k8s:ns:a unix:gid:2 unix:uid:1]", u.String())
	assert.True(t, a.Union(attest.Selectors{}).Equal(a))
	assert.True(t, attest.Selectors{}.Union(a).Equal(a))
	require.Equal(t, 2, a.Len(), "Union must not modify its receiver")
}
