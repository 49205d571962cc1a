package authorities

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// trust is a Source a test sets.
type trust struct {
	bundle  *spiffebundle.Bundle
	active  *x509.Certificate
	tainted []*x509.Certificate
}

func (t *trust) Bundle() *spiffebundle.Bundle        { return t.bundle }
func (t *trust) ActiveX509CA() *x509.Certificate     { return t.active }
func (t *trust) TaintedX509CAs() []*x509.Certificate { return t.tainted }

// keyTrust also names tainted keys.
type keyTrust struct {
	trust
	jwt, wit []string
}

func (t *keyTrust) TaintedJWTKeyIDs() []string { return t.jwt }
func (t *keyTrust) TaintedWITKeyIDs() []string { return t.wit }

func TestApply(t *testing.T) {
	ca1, ca2 := testca.New(t, td), testca.New(t, td)
	b := spiffebundle.FromX509Authorities(td, []*x509.Certificate{ca1.Cert(), ca2.Cert()})
	src := &trust{bundle: b, active: ca1.Cert()}
	var s State
	require.False(t, s.Replaces(ca1.Cert().Raw, false), "nothing known: nothing replaced")

	c := s.Apply(Read(src), td)
	require.Equal(t, Changes{Bundle: true}, c)
	require.Same(t, b, s.Bundle)
	require.EqualValues(t, 1, s.Gen)
	require.False(t, s.Replaces(ca1.Cert().Raw, false))
	require.True(t, s.Replaces(ca2.Cert().Raw, false), "not the active CA")
	require.False(t, s.Replaces(ca2.Cert().Raw, true), "lazy rotation keeps it")

	// The same again changes nothing.
	require.Equal(t, Changes{}, s.Apply(Read(src), td))
	require.EqualValues(t, 1, s.Gen)

	// A taint counts, and replaces even lazily.
	src.tainted = []*x509.Certificate{ca2.Cert()}
	require.Equal(t, Changes{}, s.Apply(Read(src), td))
	require.EqualValues(t, 2, s.Gen)
	require.True(t, s.Replaces(ca2.Cert().Raw, true))

	// A bundle of another trust domain, or none, is not taken.
	src.bundle = spiffebundle.New(spiffeid.RequireTrustDomainFromString("other.org"))
	s.Apply(Read(src), td)
	require.Same(t, b, s.Bundle)
	src.bundle = nil
	s.Apply(Read(src), td)
	require.Same(t, b, s.Bundle)
}

func TestTaintedKeys(t *testing.T) {
	b := spiffebundle.New(td)
	k := testca.NewECKey(t)
	require.NoError(t, b.AddJWTAuthority("j1", k.Public()))
	require.NoError(t, b.AddJWTAuthority("j2", k.Public()))
	require.NoError(t, b.AddWITAuthority("w1", k.Public()))
	require.NoError(t, b.AddWITAuthority("w2", k.Public()))
	src := &keyTrust{trust: trust{bundle: b}}
	var s State
	require.Equal(t, Changes{Bundle: true}, s.Apply(Read(src), td))
	require.True(t, s.TrustsJWTKey("j1"))
	require.True(t, s.TrustsWITKey("w1"))
	require.False(t, s.TrustsJWTKey("w1"), "a WIT key is no JWT key")
	require.False(t, s.TrustsWITKey("gone"), "not in the bundle")

	src.jwt, src.wit = []string{"j1"}, []string{"w2"}
	require.Equal(t, Changes{TaintedJWT: true, TaintedWIT: true}, s.Apply(Read(src), td))
	require.False(t, s.TrustsJWTKey("j1"))
	require.True(t, s.TrustsJWTKey("j2"))
	require.False(t, s.TrustsWITKey("w2"))
	require.True(t, s.TrustsWITKey("w1"))
	require.Equal(t, map[string]bool{"j1": true}, s.TaintedJWT)

	src.wit = nil
	require.Equal(t, Changes{TaintedWIT: true}, s.Apply(Read(src), td))
	require.True(t, s.TrustsWITKey("w2"))
}
