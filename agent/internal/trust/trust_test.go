package trust

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	wtd   = spiffeid.RequireTrustDomainFromString("example.org")
	fedTD = spiffeid.RequireTrustDomainFromString("other.test")
)

// The taints' subscribers hear of a change of the set of tainted CAs or
// keys, from a sync update (setTaintedKeys, then set) or a restore, once
// per update; not of an update that names the same taints, in whatever
// order, nor of one that changes only the bundle.
func TestTrustTellsChangesOfTheTaints(t *testing.T) {
	ca := testca.New(t, wtd)
	tr := New(spiffebundle.FromX509Bundle(ca.X509Bundle()))
	changes, unsubscribe := tr.SubscribeTaints()
	defer unsubscribe()
	told := func() bool {
		select {
		case <-changes:
			return true
		default:
			return false
		}
	}
	update := func(cas []*x509.Certificate, jwt, wit []string) {
		tr.SetTaintedKeys(jwt, wit)
		tr.Set(nil, false, nil, cas, nil)
	}
	a, b := testca.New(t, wtd).Cert(), testca.New(t, wtd).Cert()

	update(nil, nil, nil)
	assert.False(t, told(), "no taints, as before")
	v := tr.TaintsVersion()
	update([]*x509.Certificate{a, b}, []string{"j1"}, nil)
	assert.True(t, told(), "two CAs and a JWT key tainted")
	assert.NotEqual(t, v, tr.TaintsVersion())
	v = tr.TaintsVersion()
	update([]*x509.Certificate{b, a}, []string{"j1"}, []string{})
	assert.False(t, told(), "the same taints in another order")
	assert.Equal(t, v, tr.TaintsVersion())
	tr.Set(spiffebundle.FromX509Bundle(ca.X509Bundle()), false, nil, []*x509.Certificate{a, b}, nil)
	assert.False(t, told(), "only the bundle changed")

	for _, tc := range []struct {
		name     string
		cas      []*x509.Certificate
		jwt, wit []string
	}{
		{"a CA no longer tainted", []*x509.Certificate{a}, []string{"j1"}, nil},
		{"another CA in its place", []*x509.Certificate{b}, []string{"j1"}, nil},
		{"a JWT key alone", []*x509.Certificate{b}, []string{"j2"}, nil},
		{"a WIT key alone", []*x509.Certificate{b}, []string{"j2"}, []string{"w1"}},
		{"no taints", nil, nil, nil},
	} {
		update(tc.cas, tc.jwt, tc.wit)
		assert.True(t, told(), tc.name)
		assert.False(t, told(), "%s: told once", tc.name)
	}
}

// The state answers with what the last update said: the trust domain's
// bundle, the federated ones (never one of its own trust domain), the
// active CA and the taints; the servers are verified with the own trust
// domain's authorities only.
func TestStateKeepsWhatTheServerSent(t *testing.T) {
	ca := testca.New(t, wtd)
	first := spiffebundle.FromX509Bundle(ca.X509Bundle())
	st := New(first)
	updates, unsubscribe := st.Subscribe()
	defer unsubscribe()

	assert.Same(t, first, st.Bundle())
	assert.Nil(t, st.ActiveX509CA(), "none before the server said")
	assert.Empty(t, st.FederatedBundles())
	got, err := st.GetBundleForTrustDomain(wtd)
	require.NoError(t, err)
	assert.Same(t, first, got)
	_, err = st.GetBundleForTrustDomain(fedTD)
	assert.ErrorContains(t, err, `agent: no bundle for trust domain "other.test"`)
	x, err := st.GetX509BundleForTrustDomain(wtd)
	require.NoError(t, err)
	assert.True(t, x.Equal(ca.X509Bundle()))
	v := st.Version()

	second := spiffebundle.FromX509Bundle(testca.New(t, wtd).X509Bundle())
	fed := spiffebundle.FromX509Bundle(testca.New(t, fedTD).X509Bundle())
	zed := spiffebundle.FromX509Bundle(testca.New(t, spiffeid.RequireTrustDomainFromString("zed.test")).X509Bundle())
	own := spiffebundle.FromX509Bundle(testca.New(t, wtd).X509Bundle())
	tainted := testca.New(t, wtd).Cert()
	st.SetTaintedKeys([]string{"j1"}, []string{"w1"})
	st.Set(second, true, []*spiffebundle.Bundle{zed, fed, own}, []*x509.Certificate{tainted}, ca.Cert())
	select {
	case <-updates:
	default:
		t.Fatal("Set told no subscriber")
	}
	assert.NotEqual(t, v, st.Version())
	assert.Same(t, second, st.Bundle())
	assert.Same(t, ca.Cert(), st.ActiveX509CA())
	assert.Equal(t, []*spiffebundle.Bundle{fed, zed}, st.FederatedBundles(), "sorted, without the own trust domain's")
	got, err = st.GetBundleForTrustDomain(fedTD)
	require.NoError(t, err)
	assert.Same(t, fed, got)
	got, err = st.GetBundleForTrustDomain(wtd)
	require.NoError(t, err)
	assert.Same(t, second, got, "the own bundle never comes through federation")
	_, err = st.GetX509BundleForTrustDomain(fedTD)
	assert.ErrorContains(t, err, `agent: no X.509 bundle for trust domain "other.test"`, "a federated bundle does not verify the servers")
	assert.Equal(t, []*x509.Certificate{tainted}, st.TaintedX509CAs())
	assert.Equal(t, []string{"j1"}, st.TaintedJWTKeyIDs())
	assert.Equal(t, []string{"w1"}, st.TaintedWITKeyIDs())
	cas, jwt, wit := st.Taints()
	assert.Equal(t, []*x509.Certificate{tainted}, cas)
	assert.Equal(t, []string{"j1"}, jwt)
	assert.Equal(t, []string{"w1"}, wit)

	// An update without a bundle, the federated bundles or an active CA
	// leaves them as they were; a bundle of another trust domain is
	// ignored.
	st.Set(fed, false, nil, nil, nil)
	assert.Same(t, second, st.Bundle())
	assert.Same(t, ca.Cert(), st.ActiveX509CA())
	assert.Equal(t, []*spiffebundle.Bundle{fed, zed}, st.FederatedBundles())
	assert.Empty(t, st.TaintedX509CAs(), "the taints are the update's")
	st.Set(nil, true, nil, nil, nil)
	assert.Empty(t, st.FederatedBundles(), "set to none")
}
