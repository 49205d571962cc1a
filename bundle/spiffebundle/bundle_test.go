package spiffebundle_test

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
)

func TestNew(t *testing.T) {
	b := spiffebundle.New(td)
	assert.Equal(t, td, b.TrustDomain())
	assert.True(t, b.Empty())
	_, ok := b.SequenceNumber()
	assert.False(t, ok)
	_, ok = b.RefreshHint()
	assert.False(t, ok)
}

func TestX509AuthorityMethods(t *testing.T) {
	r1, r2 := newRoot(t), newRoot(t)
	b := spiffebundle.FromX509Authorities(td, []*x509.Certificate{r1, r1, nil})
	assert.Equal(t, []*x509.Certificate{r1}, b.X509Authorities())
	assert.False(t, b.Empty())

	b.AddX509Authority(r2)
	b.AddX509Authority(r2)
	assert.True(t, b.HasX509Authority(r2))
	assert.Equal(t, []*x509.Certificate{r1, r2}, b.X509Authorities())

	// Copies out.
	got := b.X509Authorities()
	got[0] = nil
	assert.Equal(t, []*x509.Certificate{r1, r2}, b.X509Authorities())

	b.RemoveX509Authority(r1)
	assert.False(t, b.HasX509Authority(r1))

	b.SetX509Authorities([]*x509.Certificate{r1})
	assert.Equal(t, []*x509.Certificate{r1}, b.X509Authorities())
	b.SetX509Authorities(nil)
	assert.True(t, b.Empty())
}

func TestJWTAndWITAuthorityMethods(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	b := spiffebundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"j1": k1.Public()})
	assert.True(t, b.HasJWTAuthority("j1"))
	assert.False(t, b.Empty())

	require.NoError(t, b.AddJWTAuthority("j2", k2.Public()))
	key, ok := b.FindJWTAuthority("j2")
	assert.True(t, ok)
	assert.Equal(t, k2.Public(), key)
	m := b.JWTAuthorities()
	delete(m, "j1")
	assert.Len(t, b.JWTAuthorities(), 2)
	b.RemoveJWTAuthority("j1")
	assert.False(t, b.HasJWTAuthority("j1"))
	b.SetJWTAuthorities(map[string]crypto.PublicKey{"j3": k1.Public()})
	assert.Equal(t, map[string]crypto.PublicKey{"j3": k1.Public()}, b.JWTAuthorities())

	w := spiffebundle.FromWITAuthorities(td, map[string]crypto.PublicKey{"w1": k1.Public()})
	assert.True(t, w.HasWITAuthority("w1"))
	assert.False(t, w.Empty())
	require.NoError(t, w.AddWITAuthority("w2", k2.Public()))
	key, ok = w.FindWITAuthority("w2")
	assert.True(t, ok)
	assert.Equal(t, k2.Public(), key)
	m = w.WITAuthorities()
	delete(m, "w1")
	assert.Len(t, w.WITAuthorities(), 2)
	w.RemoveWITAuthority("w1")
	assert.False(t, w.HasWITAuthority("w1"))
	w.SetWITAuthorities(nil)
	assert.True(t, w.Empty())
}

func TestAddAuthorityErrors(t *testing.T) {
	k := ecKey(t)
	b := spiffebundle.New(td)
	require.NoError(t, b.AddJWTAuthority("jwt", k.Public()))
	require.NoError(t, b.AddWITAuthority("wit", k.Public()))

	tests := []struct {
		name    string
		add     func() error
		wantErr string
	}{
		{"JWT empty key ID", func() error { return b.AddJWTAuthority("", k.Public()) }, "spiffebundle: keyID cannot be empty"},
		{"WIT empty key ID", func() error { return b.AddWITAuthority("", k.Public()) }, "spiffebundle: keyID cannot be empty"},
		{"JWT nil key", func() error { return b.AddJWTAuthority("x", nil) }, "spiffebundle: authority cannot be nil"},
		// Bundle rule 14: private keys never enter a bundle.
		{"WIT private key", func() error { return b.AddWITAuthority("x", k) }, "spiffebundle: authority must be a public key; got *ecdsa.PrivateKey"},
		// WIT rule 16: a kid is unique across the whole bundle.
		{"JWT kid used by WIT", func() error { return b.AddJWTAuthority("wit", k.Public()) }, `spiffebundle: key ID "wit" is already used by a WIT authority`},
		{"WIT kid used by JWT", func() error { return b.AddWITAuthority("jwt", k.Public()) }, `spiffebundle: key ID "jwt" is already used by a JWT authority`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.EqualError(t, tt.add(), tt.wantErr)
		})
	}
	assert.Len(t, b.JWTAuthorities(), 1)
	assert.Len(t, b.WITAuthorities(), 1)
}

func TestSequenceAndRefreshHint(t *testing.T) {
	b := spiffebundle.New(td)
	b.SetSequenceNumber(3)
	b.SetRefreshHint(time.Minute)
	seq, ok := b.SequenceNumber()
	assert.True(t, ok)
	assert.Equal(t, uint64(3), seq)
	hint, ok := b.RefreshHint()
	assert.True(t, ok)
	assert.Equal(t, time.Minute, hint)

	b.ClearSequenceNumber()
	b.ClearRefreshHint()
	_, ok = b.SequenceNumber()
	assert.False(t, ok)
	_, ok = b.RefreshHint()
	assert.False(t, ok)
}

func TestConversions(t *testing.T) {
	root := newRoot(t)
	k1, k2 := ecKey(t), ecKey(t)
	b := spiffebundle.New(td)
	b.AddX509Authority(root)
	require.NoError(t, b.AddJWTAuthority("j", k1.Public()))
	require.NoError(t, b.AddWITAuthority("w", k2.Public()))

	xb := b.X509Bundle()
	assert.True(t, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}).Equal(xb))
	jb := b.JWTBundle()
	assert.True(t, jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"j": k1.Public()}).Equal(jb))
	wb := b.WITBundle()
	assert.True(t, witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{"w": k2.Public()}).Equal(wb))

	// The per-format bundles are copies.
	xb.RemoveX509Authority(root)
	jb.RemoveJWTAuthority("j")
	wb.RemoveWITAuthority("w")
	assert.False(t, b.Empty())
	assert.True(t, b.HasX509Authority(root))
	assert.True(t, b.HasJWTAuthority("j"))
	assert.True(t, b.HasWITAuthority("w"))

	fromX := spiffebundle.FromX509Bundle(b.X509Bundle())
	assert.Equal(t, td, fromX.TrustDomain())
	assert.Equal(t, []*x509.Certificate{root}, fromX.X509Authorities())
	assert.Empty(t, fromX.JWTAuthorities())

	fromJ := spiffebundle.FromJWTBundle(b.JWTBundle())
	assert.Equal(t, map[string]crypto.PublicKey{"j": k1.Public()}, fromJ.JWTAuthorities())
	assert.Empty(t, fromJ.X509Authorities())

	fromW := spiffebundle.FromWITBundle(b.WITBundle())
	assert.Equal(t, map[string]crypto.PublicKey{"w": k2.Public()}, fromW.WITAuthorities())
}

func TestEqualAndClone(t *testing.T) {
	root := newRoot(t)
	k := ecKey(t)
	base := func() *spiffebundle.Bundle {
		b := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})
		require.NoError(t, b.AddJWTAuthority("j", k.Public()))
		require.NoError(t, b.AddWITAuthority("w", k.Public()))
		b.SetSequenceNumber(1)
		b.SetRefreshHint(time.Minute)
		return b
	}
	a := base()
	tests := []struct {
		name   string
		change func(b *spiffebundle.Bundle)
		equal  bool
	}{
		{"identical", func(*spiffebundle.Bundle) {}, true},
		{"sequence differs", func(b *spiffebundle.Bundle) { b.SetSequenceNumber(2) }, false},
		{"sequence cleared", func(b *spiffebundle.Bundle) { b.ClearSequenceNumber() }, false},
		{"hint differs", func(b *spiffebundle.Bundle) { b.SetRefreshHint(time.Hour) }, false},
		{"hint cleared", func(b *spiffebundle.Bundle) { b.ClearRefreshHint() }, false},
		{"x509 differs", func(b *spiffebundle.Bundle) { b.AddX509Authority(newRoot(t)) }, false},
		{"jwt differs", func(b *spiffebundle.Bundle) { b.RemoveJWTAuthority("j") }, false},
		{"wit differs", func(b *spiffebundle.Bundle) { b.RemoveWITAuthority("w") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := base()
			tt.change(b)
			assert.Equal(t, tt.equal, a.Equal(b))
			assert.Equal(t, tt.equal, b.Equal(a))
		})
	}

	other := spiffebundle.New(td2)
	assert.False(t, spiffebundle.New(td).Equal(other))
	assert.True(t, a.Equal(a))
	assert.False(t, a.Equal(nil))
	var nilBundle *spiffebundle.Bundle
	assert.True(t, nilBundle.Equal(nil))

	c := a.Clone()
	assert.True(t, a.Equal(c))
	c.SetSequenceNumber(9)
	c.SetRefreshHint(time.Second)
	c.RemoveX509Authority(root)
	c.RemoveJWTAuthority("j")
	c.RemoveWITAuthority("w")
	assert.True(t, a.Equal(base()), "changing a clone must not change the original")
}

func TestBundleSources(t *testing.T) {
	root := newRoot(t)
	b := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})

	got, err := b.GetBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b, got)
	xb, err := b.GetX509BundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Equal(t, []*x509.Certificate{root}, xb.X509Authorities())
	jb, err := b.GetJWTBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Equal(t, td, jb.TrustDomain())
	wb, err := b.GetWITBundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Equal(t, td, wb.TrustDomain())

	// Bundle rule 1: a bundle answers for its own trust domain only.
	_, err = b.GetBundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no SPIFFE bundle for trust domain "example.com"`)
	_, err = b.GetX509BundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no X.509 bundle for trust domain "example.com"`)
	_, err = b.GetJWTBundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no JWT bundle for trust domain "example.com"`)
	_, err = b.GetWITBundleForTrustDomain(td2)
	assert.EqualError(t, err, `spiffebundle: no WIT bundle for trust domain "example.com"`)
}

func TestBundleConcurrentUse(t *testing.T) {
	roots := []*x509.Certificate{newRoot(t), newRoot(t), newRoot(t)}
	key := ecKey(t)
	b := spiffebundle.New(td)
	var wg sync.WaitGroup
	for i := range roots {
		wg.Go(func() {
			kid := fmt.Sprint(i)
			for range 30 {
				b.AddX509Authority(roots[i])
				_ = b.AddJWTAuthority("j"+kid, key.Public())
				_ = b.AddWITAuthority("w"+kid, key.Public())
				b.SetSequenceNumber(uint64(i))
				b.SetRefreshHint(time.Duration(i+1) * time.Second)
				_, _ = b.Marshal()
				_ = b.Equal(b.Clone())
				_ = b.X509Bundle()
				_ = b.JWTBundle()
				_ = b.WITBundle()
				_, _ = b.FindJWTAuthority("j0")
				_ = b.Empty()
				b.RemoveX509Authority(roots[i])
				b.RemoveJWTAuthority("j" + kid)
				b.RemoveWITAuthority("w" + kid)
			}
		})
	}
	wg.Wait()
}
