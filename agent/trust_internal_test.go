package agent

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

// The taints' subscribers hear of a change of the set of tainted CAs or
// keys, from a sync update (setTaintedKeys, then set) or a restore, once
// per update; not of an update that names the same taints, in whatever
// order, nor of one that changes only the bundle.
func TestTrustTellsChangesOfTheTaints(t *testing.T) {
	ca := testca.New(t, wtd)
	tr := newTrust(spiffebundle.FromX509Bundle(ca.X509Bundle()))
	changes, unsubscribe := tr.subscribeTaints()
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
		tr.setTaintedKeys(jwt, wit)
		tr.set(nil, false, nil, cas, nil)
	}
	a, b := testca.New(t, wtd).Cert(), testca.New(t, wtd).Cert()

	update(nil, nil, nil)
	assert.False(t, told(), "no taints, as before")
	v := tr.taintsChanged()
	update([]*x509.Certificate{a, b}, []string{"j1"}, nil)
	assert.True(t, told(), "two CAs and a JWT key tainted")
	assert.NotEqual(t, v, tr.taintsChanged())
	v = tr.taintsChanged()
	update([]*x509.Certificate{b, a}, []string{"j1"}, []string{})
	assert.False(t, told(), "the same taints in another order")
	assert.Equal(t, v, tr.taintsChanged())
	tr.set(spiffebundle.FromX509Bundle(ca.X509Bundle()), false, nil, []*x509.Certificate{a, b}, nil)
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
