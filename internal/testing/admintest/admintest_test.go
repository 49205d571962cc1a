package admintest_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestStart(t *testing.T) {
	e := admintest.Start(t)
	status, body := admintest.Raw(t, e.Path, http.MethodGet, "/v1/status", nil)
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"trust_domain":"example.org","healthy":true}`, body)

	created, err := e.Client.CreateEntry(t.Context(), admintest.Entry("/web", "unix:uid:1"))
	require.NoError(t, err)
	stored, err := e.Store.Get(t.Context(), created.ID)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/agent/node1", stored.ParentID.String())
	assert.Contains(t, e.Log.String(), `msg="admin: entry created"`)
	assert.Panics(t, func() { admintest.Entry("/web", "no-colon") })

	doc := admintest.ForeignDoc(t, "other.org")
	_, err = spiffebundle.Parse(spiffeid.RequireTrustDomainFromString("other.org"), doc)
	require.NoError(t, err)
	assert.Len(t, admintest.RandomHex(), 16)
	assert.NotEqual(t, admintest.RandomHex(), admintest.RandomHex())
}

func TestTokens(t *testing.T) {
	e := admintest.Start(t)
	alias := spiffeid.RequireFromPath(admintest.TrustDomain, "/nodes/blue")
	tok, err := e.Client.GenerateToken(t.Context(), time.Minute, alias)
	require.NoError(t, err)
	assert.Contains(t, tok.Value, "tok-")
	ttl, got := e.Tokens.Last()
	assert.Equal(t, time.Minute, ttl)
	assert.Equal(t, alias, got)

	e.Tokens.SetErr(errors.New("issuer on fire"))
	_, err = e.Client.GenerateToken(t.Context(), time.Minute, spiffeid.ID{})
	require.EqualError(t, err, "admin: internal error")
}

func TestAuthorities(t *testing.T) {
	f := admintest.NewAuthorities(admintest.SampleAuthorities())
	e := admintest.Start(t, admintest.WithAuthorities(f))
	ctx := t.Context()
	assert.Empty(t, f.LastCall())

	a, err := e.Client.PrepareAuthority(ctx, registry.AuthorityJWT)
	require.NoError(t, err)
	assert.Equal(t, "kid-2", a.ID)
	assert.Equal(t, "prepare jwt", f.LastCall())
	a, err = e.Client.TaintAuthority(ctx, registry.AuthorityX509, "0a0a")
	require.NoError(t, err)
	assert.True(t, a.Tainted)
	_, err = e.Client.TaintAuthority(ctx, registry.AuthorityX509, "1b1b")
	require.ErrorIs(t, err, admin.ErrFailedPrecondition, "the active one")
	_, err = e.Client.RevokeAuthority(ctx, registry.AuthorityWIT, "nope")
	require.ErrorIs(t, err, registry.ErrNotFound)

	f.SetList(nil)
	list, err := e.Client.Authorities(ctx)
	require.NoError(t, err)
	assert.Empty(t, list)
	f.SetErr(errors.New("CA on fire"))
	_, err = e.Client.ActivateAuthority(ctx, registry.AuthorityX509, "")
	require.EqualError(t, err, "admin: internal error")
	assert.Equal(t, "activate x509", f.LastCall())
}

func TestFederation(t *testing.T) {
	f := admintest.NewRefreshingFederation()
	e := admintest.Start(t, func(c *adminserver.Config) { c.Federation = f })
	ctx := t.Context()
	rel := registry.FederationRelationship{TrustDomain: admintest.Partner, BundleEndpointURL: "https://partner.test/",
		BundleEndpointProfile: registry.ProfileHTTPSWeb}
	_, err := e.Client.CreateFederationRelationship(ctx, rel)
	require.NoError(t, err)
	rels, err := e.Client.FederationRelationships(ctx)
	require.NoError(t, err)
	require.Len(t, rels, 2)
	assert.True(t, rels[0].Configured)
	assert.Equal(t, admintest.Configured, rels[0].TrustDomain)

	rel.TrustDomain = admintest.Configured
	_, err = e.Client.UpdateFederationRelationship(ctx, rel)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition, "the configuration's cannot change")
	require.ErrorIs(t, e.Client.DeleteFederationRelationship(ctx, admintest.Configured), admin.ErrFailedPrecondition)

	got, err := e.Client.RefreshFederationRelationship(ctx, admintest.Partner)
	require.NoError(t, err)
	assert.Equal(t, admin.Refreshed{TrustDomain: admintest.Partner, Changed: true, SequenceNumber: 7}, got)
	_, err = e.Client.RefreshFederationRelationship(ctx, admintest.Down)
	require.ErrorIs(t, err, admin.ErrUnavailable)
	assert.Equal(t, []spiffeid.TrustDomain{admintest.Partner, admintest.Down}, f.Calls())

	f.SetErr(errors.New("database on fire"))
	_, err = e.Client.FederationRelationships(ctx)
	require.EqualError(t, err, "admin: internal error")

	e2, f2 := admintest.StartFederation(t)
	rel.TrustDomain = admintest.Partner
	_, err = e2.Client.CreateFederationRelationship(ctx, rel)
	require.NoError(t, err)
	require.NoError(t, e2.Client.DeleteFederationRelationship(ctx, admintest.Partner))
	_, err = f2.Store.GetFederationRelationship(ctx, admintest.Partner)
	require.ErrorIs(t, err, registry.ErrNotFound, "the relationship lives in the store")
}

func TestMinter(t *testing.T) {
	e, mi := admintest.StartMinting(t)
	csr, key := admintest.CSR(t, []string{"spiffe://example.org/db"}, "db.example.org")
	req, err := x509.ParseCertificateRequest(csr)
	require.NoError(t, err)
	assert.Equal(t, []string{"db.example.org"}, req.DNSNames)

	minted, err := e.Client.MintX509SVID(t.Context(), csr, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, key.Public(), minted.Chain[0].PublicKey)
	_, _, err = x509svid.Verify(minted.Chain, mi.CA.Bundle())
	require.NoError(t, err, "the API's own bundle is the minter's")

	jwt, err := e.Client.MintJWTSVID(t.Context(), spiffeid.RequireFromPath(admintest.TrustDomain, "/db"), []string{"x"}, 0)
	require.NoError(t, err)
	_, err = jwtsvid.ParseAndValidate(jwt.Token, mi.CA.Bundle(), []string{"x"})
	require.NoError(t, err)

	mi.SetErr(fmt.Errorf("ca: no: %w", registry.ErrInvalid))
	_, err = e.Client.MintX509SVID(t.Context(), csr, 0)
	require.ErrorIs(t, err, registry.ErrInvalid)
	_, err = e.Client.MintJWTSVID(t.Context(), spiffeid.RequireFromPath(admintest.TrustDomain, "/db"), []string{"x"}, 0)
	require.ErrorIs(t, err, registry.ErrInvalid)
}
