package bundleset

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// fakeBundle is the smallest Bundle: a trust domain behind a pointer.
type fakeBundle struct{ td spiffeid.TrustDomain }

func (b *fakeBundle) TrustDomain() spiffeid.TrustDomain { return b.td }

func bundle(name string) *fakeBundle {
	return &fakeBundle{td: spiffeid.RequireTrustDomainFromString(name)}
}

func td(name string) spiffeid.TrustDomain {
	return spiffeid.RequireTrustDomainFromString(name)
}

func TestAdd(t *testing.T) {
	org, com, org2 := bundle("example.org"), bundle("example.com"), bundle("example.org")

	tests := []struct {
		name string
		add  [][]*fakeBundle // one Add call per element
		want []*fakeBundle   // sorted by trust domain
	}{
		{name: "nothing", add: nil, want: nil},
		{name: "no bundles", add: [][]*fakeBundle{{}}, want: nil},
		{name: "nil skipped", add: [][]*fakeBundle{{nil}, {org, nil}}, want: []*fakeBundle{org}},
		// Sorted by trust domain name: example.com before example.org.
		{name: "sorted", add: [][]*fakeBundle{{org, com}}, want: []*fakeBundle{com, org}},
		// Bundle rule 3: one bundle per trust domain; the newest wins.
		{name: "replaced by a later call", add: [][]*fakeBundle{{org, com}, {org2}}, want: []*fakeBundle{com, org2}},
		{name: "last of one call wins", add: [][]*fakeBundle{{org2, com, org}}, want: []*fakeBundle{com, org}},
		{name: "same bundle twice", add: [][]*fakeBundle{{org}, {org}}, want: []*fakeBundle{org}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Set[*fakeBundle]
			for _, bundles := range tt.add {
				s.Add(bundles...)
			}
			got := s.Bundles()
			require.Equal(t, len(tt.want), len(got))
			for i := range tt.want {
				assert.Same(t, tt.want[i], got[i])
			}
			assert.Equal(t, len(tt.want), s.Len())
			for _, b := range tt.want {
				assert.True(t, s.Has(b.td))
				g, ok := s.Get(b.td)
				assert.True(t, ok)
				assert.Same(t, b, g)
			}
		})
	}
}

func TestGetRemove(t *testing.T) {
	org, com := bundle("example.org"), bundle("example.com")
	var s Set[*fakeBundle]

	// The zero set answers every query.
	assert.Zero(t, s.Len())
	assert.Nil(t, s.Bundles())
	assert.False(t, s.Has(org.td))
	s.Remove(org.td)

	s.Add(org, com)
	tests := []struct {
		name   string
		remove spiffeid.TrustDomain
		query  spiffeid.TrustDomain
		want   *fakeBundle
	}{
		{name: "present", query: td("example.org"), want: org},
		{name: "absent", query: td("example.net"), want: nil},
		{name: "zero trust domain", query: spiffeid.TrustDomain{}, want: nil},
		{name: "removed", remove: td("example.com"), query: td("example.com"), want: nil},
		{name: "removing an absent one", remove: td("example.net"), query: td("example.org"), want: org},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.Remove(tt.remove)
			got, ok := s.Get(tt.query)
			assert.Equal(t, tt.want != nil, ok)
			assert.Equal(t, tt.want != nil, s.Has(tt.query))
			if tt.want == nil {
				assert.Nil(t, got)
				return
			}
			assert.Same(t, tt.want, got)
		})
	}
	assert.Equal(t, 1, s.Len())
}

func TestBundlesIsACopy(t *testing.T) {
	var s Set[*fakeBundle]
	s.Add(bundle("a.test"), bundle("b.test"))
	got := s.Bundles()
	got[0] = nil
	assert.NotNil(t, s.Bundles()[0])
}

// TestConcurrentUse is meant for -race: every method runs against writers.
func TestConcurrentUse(t *testing.T) {
	var s Set[*fakeBundle]
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			b := bundle(fmt.Sprintf("td%d.test", i))
			for range 100 {
				s.Add(b, bundle("shared.test"))
				_, _ = s.Get(td("shared.test"))
				_ = s.Has(b.td)
				_ = s.Bundles()
				_ = s.Len()
				s.Remove(b.td)
			}
		})
	}
	wg.Wait()
	got := s.Bundles()
	require.Len(t, got, 1)
	assert.Equal(t, td("shared.test"), got[0].TrustDomain())
}
