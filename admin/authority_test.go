package admin_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
)

func TestAuthorities(t *testing.T) {
	f := admintest.NewAuthorities(admintest.SampleAuthorities())
	e := admintest.Start(t, admintest.WithAuthorities(f))
	ctx := t.Context()
	c := e.Client

	list, err := c.Authorities(ctx)
	require.NoError(t, err)
	for i := range list {
		list[i].NotAfter = list[i].NotAfter.UTC()
	}
	assert.Equal(t, admintest.SampleAuthorities(), list, "every field crosses the wire")

	tests := []struct {
		name string
		call func() (admin.Authority, error)
		want string // the call the manager saw
		id   string // the authority answered
	}{
		{"prepare x509", func() (admin.Authority, error) { return c.PrepareAuthority(ctx, registry.AuthorityX509) }, "prepare x509", "2c2c"},
		{"prepare jwt", func() (admin.Authority, error) { return c.PrepareAuthority(ctx, registry.AuthorityJWT) }, "prepare jwt", "kid-2"},
		{"activate x509", func() (admin.Authority, error) { return c.ActivateAuthority(ctx, registry.AuthorityX509, "") }, "activate x509", "1b1b"},
		{"activate jwt", func() (admin.Authority, error) { return c.ActivateAuthority(ctx, registry.AuthorityJWT, "kid-2") }, "activate jwt kid-2", "kid-1"},
		{"taint", func() (admin.Authority, error) { return c.TaintAuthority(ctx, registry.AuthorityX509, "0a0a") }, "taint x509 0a0a", "0a0a"},
		{"revoke", func() (admin.Authority, error) { return c.RevokeAuthority(ctx, registry.AuthorityX509, "3d3d") }, "revoke x509 3d3d", "3d3d"},
		{"prepare wit", func() (admin.Authority, error) { return c.PrepareAuthority(ctx, registry.AuthorityWIT) }, "prepare wit", ""},
		{"activate wit", func() (admin.Authority, error) { return c.ActivateAuthority(ctx, registry.AuthorityWIT, "") }, "activate wit", "wit-2"},
		{"taint wit", func() (admin.Authority, error) { return c.TaintAuthority(ctx, registry.AuthorityWIT, "wit-1") }, "taint wit wit-1", "wit-1"},
		{"revoke wit", func() (admin.Authority, error) { return c.RevokeAuthority(ctx, registry.AuthorityWIT, "wit-3") }, "revoke wit wit-3", "wit-3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := tt.call()
			if tt.id == "" {
				// The fake holds no prepared WIT key: its not-found error
				// crosses the wire as such.
				require.ErrorIs(t, err, registry.ErrNotFound)
				assert.Equal(t, tt.want, f.LastCall())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.id, a.ID)
			assert.Equal(t, tt.want, f.LastCall())
		})
	}
	a, err := c.RevokeAuthority(ctx, registry.AuthorityX509, "0a0a")
	require.NoError(t, err)
	assert.True(t, a.Revoked, "the manager's answer is returned")
	assert.Contains(t, e.Log.String(), `msg="admin: authority revoked" kind=x509 authority_id=0a0a server_id=s1`)
	assert.Contains(t, e.Log.String(), `msg="admin: authority activated"`)
	_, err = c.TaintAuthority(ctx, registry.AuthorityX509, "0a0a")
	require.NoError(t, err)
	assert.Contains(t, e.Log.String(), `msg="admin: authority tainted"`)
	assert.Contains(t, e.Log.String(), `msg="admin: authority prepared"`)
}

func TestAuthorityErrors(t *testing.T) {
	f := admintest.NewAuthorities(admintest.SampleAuthorities())
	e := admintest.Start(t, admintest.WithAuthorities(f))
	ctx := t.Context()
	c := e.Client

	_, err := c.TaintAuthority(ctx, registry.AuthorityX509, "1b1b")
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Equal(t, "admin: fake: x509 authority 1b1b is active: admin: failed precondition", err.Error())
	_, err = c.TaintAuthority(ctx, registry.AuthorityJWT, "nope")
	require.ErrorIs(t, err, registry.ErrNotFound)

	// The client refuses what it can tell is wrong before asking.
	_, err = c.TaintAuthority(ctx, registry.AuthorityX509, "")
	require.ErrorIs(t, err, registry.ErrInvalid)
	_, err = c.PrepareAuthority(ctx, "rsa")
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), `unknown authority kind "rsa" (want x509, jwt or wit)`)

	f.SetErr(errors.New("journal on fire"))
	_, err = c.Authorities(ctx)
	require.Error(t, err)
	assert.Equal(t, "admin: internal error", err.Error())
	assert.Contains(t, e.Log.String(), "journal on fire")
	f.SetErr(nil)

	// A malformed answer is refused.
	f.SetList([]admin.Authority{{Kind: registry.AuthorityX509, ID: "x", ServerID: "s", State: "retired"}})
	_, err = c.Authorities(ctx)
	require.ErrorContains(t, err, `admin: malformed authority in answer: unknown authority state "retired"`)
	f.SetList([]admin.Authority{{Kind: "rsa", ID: "x", State: registry.AuthorityOld}})
	_, err = c.TaintAuthority(ctx, "rsa", "x")
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `admin: unknown authority kind "rsa" (want x509, jwt or wit): registry: invalid argument`)
	f.SetList([]admin.Authority{{Kind: registry.AuthorityJWT, State: registry.AuthorityPrepared}})
	_, err = c.PrepareAuthority(ctx, registry.AuthorityJWT)
	require.ErrorContains(t, err, "admin: malformed authority in answer: authority ID is missing")
}

func TestParseAuthorityKind(t *testing.T) {
	for _, s := range []string{"x509", "jwt", "wit"} {
		k, err := admin.ParseAuthorityKind(s)
		require.NoError(t, err)
		assert.Equal(t, s, string(k))
	}
	for _, s := range []string{"", "X509", "x.509", "WIT", "wit-svid"} {
		_, err := admin.ParseAuthorityKind(s)
		require.ErrorIs(t, err, registry.ErrInvalid, s)
	}
}
