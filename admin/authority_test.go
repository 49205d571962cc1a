package admin_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/registry"
)

// fakeAuthorities is an AuthorityManager over a fixed list, which records
// the calls it answers.
type fakeAuthorities struct {
	mu    sync.Mutex
	list  []admin.Authority
	err   error
	calls []string
}

func (f *fakeAuthorities) record(call string) ([]admin.Authority, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.list, f.err
}

func (f *fakeAuthorities) find(kind registry.AuthorityKind, match func(admin.Authority) bool, call string) (admin.Authority, error) {
	list, err := f.record(call)
	if err != nil {
		return admin.Authority{}, err
	}
	for _, a := range list {
		if a.Kind == kind && match(a) {
			return a, nil
		}
	}
	return admin.Authority{}, fmt.Errorf("fake: no %s authority: %w", kind, registry.ErrNotFound)
}

func (f *fakeAuthorities) Authorities(context.Context) ([]admin.Authority, error) {
	return f.record("list")
}

func (f *fakeAuthorities) PrepareAuthority(_ context.Context, kind registry.AuthorityKind) (admin.Authority, error) {
	return f.find(kind, func(a admin.Authority) bool { return a.State == registry.AuthorityPrepared }, "prepare "+string(kind))
}

func (f *fakeAuthorities) ActivateAuthority(_ context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error) {
	return f.find(kind, func(a admin.Authority) bool { return a.State == registry.AuthorityActive }, strings.TrimSpace("activate "+string(kind)+" "+id))
}

func (f *fakeAuthorities) TaintAuthority(_ context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error) {
	a, err := f.find(kind, func(a admin.Authority) bool { return a.ID == id }, "taint "+string(kind)+" "+id)
	if err == nil && a.State != registry.AuthorityOld {
		return admin.Authority{}, fmt.Errorf("fake: %s authority %s is %s: %w", kind, id, a.State, admin.ErrFailedPrecondition)
	}
	a.Tainted = true
	return a, err
}

func (f *fakeAuthorities) RevokeAuthority(_ context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error) {
	a, err := f.find(kind, func(a admin.Authority) bool { return a.ID == id }, "revoke "+string(kind)+" "+id)
	a.Revoked = true
	return a, err
}

func (f *fakeAuthorities) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeAuthorities) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

var notAfter = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func sampleAuthorities() []admin.Authority {
	return []admin.Authority{
		{Kind: registry.AuthorityX509, ID: "0a0a", ServerID: "s1", Local: true, State: registry.AuthorityOld, NotAfter: notAfter, Tainted: true},
		{Kind: registry.AuthorityX509, ID: "1b1b", ServerID: "s1", Local: true, State: registry.AuthorityActive, NotAfter: notAfter},
		{Kind: registry.AuthorityX509, ID: "2c2c", ServerID: "s1", Local: true, State: registry.AuthorityPrepared, NotAfter: notAfter},
		{Kind: registry.AuthorityX509, ID: "3d3d", ServerID: "s2", State: registry.AuthorityOld, NotAfter: notAfter, Tainted: true, Revoked: true, Pending: true},
		{Kind: registry.AuthorityJWT, ID: "kid-1", ServerID: "s1", Local: true, State: registry.AuthorityActive, NotAfter: notAfter},
		{Kind: registry.AuthorityJWT, ID: "kid-2", ServerID: "s1", Local: true, State: registry.AuthorityPrepared, NotAfter: notAfter},
		{Kind: registry.AuthorityWIT, ID: "wit-1", ServerID: "s1", Local: true, State: registry.AuthorityOld, NotAfter: notAfter, Tainted: true},
		{Kind: registry.AuthorityWIT, ID: "wit-2", ServerID: "s1", Local: true, State: registry.AuthorityActive, NotAfter: notAfter},
		{Kind: registry.AuthorityWIT, ID: "wit-3", ServerID: "s2", State: registry.AuthorityOld, NotAfter: notAfter, Tainted: true, Revoked: true, Pending: true},
	}
}

func withAuthorities(f *fakeAuthorities) func(*admin.Config) {
	return func(c *admin.Config) { c.Authorities = f }
}

func TestAuthorities(t *testing.T) {
	f := &fakeAuthorities{list: sampleAuthorities()}
	e := start(t, withAuthorities(f))
	ctx := t.Context()
	c := e.client

	list, err := c.Authorities(ctx)
	require.NoError(t, err)
	for i := range list {
		list[i].NotAfter = list[i].NotAfter.UTC()
	}
	assert.Equal(t, sampleAuthorities(), list, "every field crosses the wire")

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
				assert.Equal(t, tt.want, f.lastCall())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.id, a.ID)
			assert.Equal(t, tt.want, f.lastCall())
		})
	}
	a, err := c.RevokeAuthority(ctx, registry.AuthorityX509, "0a0a")
	require.NoError(t, err)
	assert.True(t, a.Revoked, "the manager's answer is returned")
	assert.Contains(t, e.log.String(), `msg="admin: authority revoked" kind=x509 authority_id=0a0a server_id=s1`)
	assert.Contains(t, e.log.String(), `msg="admin: authority activated"`)
	_, err = c.TaintAuthority(ctx, registry.AuthorityX509, "0a0a")
	require.NoError(t, err)
	assert.Contains(t, e.log.String(), `msg="admin: authority tainted"`)
	assert.Contains(t, e.log.String(), `msg="admin: authority prepared"`)
}

func TestAuthorityErrors(t *testing.T) {
	f := &fakeAuthorities{list: sampleAuthorities()}
	e := start(t, withAuthorities(f))
	ctx := t.Context()
	c := e.client

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

	f.setErr(errors.New("journal on fire"))
	_, err = c.Authorities(ctx)
	require.Error(t, err)
	assert.Equal(t, "admin: internal error", err.Error())
	assert.Contains(t, e.log.String(), "journal on fire")
	f.setErr(nil)

	// A malformed answer is refused.
	f.list = []admin.Authority{{Kind: registry.AuthorityX509, ID: "x", ServerID: "s", State: "retired"}}
	_, err = c.Authorities(ctx)
	require.ErrorContains(t, err, `admin: malformed authority in answer: unknown authority state "retired"`)
	f.list = []admin.Authority{{Kind: "rsa", ID: "x", State: registry.AuthorityOld}}
	_, err = c.TaintAuthority(ctx, "rsa", "x")
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `admin: unknown authority kind "rsa" (want x509, jwt or wit): registry: invalid argument`)
	f.list = []admin.Authority{{Kind: registry.AuthorityJWT, State: registry.AuthorityPrepared}}
	_, err = c.PrepareAuthority(ctx, registry.AuthorityJWT)
	require.ErrorContains(t, err, "admin: malformed authority in answer: authority ID is missing")
}

func TestAuthorityRequests(t *testing.T) {
	f := &fakeAuthorities{list: sampleAuthorities()}
	e := start(t, withAuthorities(f))
	tests := []struct {
		name, target, body string
		status             int
		contains           string
	}{
		{"unknown kind", "/v1/authorities/ssh/prepare", "", http.StatusBadRequest, `unknown authority kind \"ssh\"`},
		{"taint WIT without ID", "/v1/authorities/wit/taint", `{}`, http.StatusBadRequest, "the authority ID is required"},
		{"taint WIT unknown", "/v1/authorities/wit/taint", `{"authority_id":"nope"}`, http.StatusNotFound, `"code":"not_found"`},
		{"taint active WIT", "/v1/authorities/wit/taint", `{"authority_id":"wit-2"}`, http.StatusConflict, `"code":"failed_precondition"`},
		{"revoke WIT", "/v1/authorities/wit/revoke", `{"authority_id":"wit-1"}`, http.StatusOK, `"kind":"wit"`},
		{"taint without body", "/v1/authorities/x509/taint", "", http.StatusBadRequest, "malformed request body"},
		{"taint without ID", "/v1/authorities/x509/taint", `{}`, http.StatusBadRequest, "the authority ID is required"},
		{"revoke with unknown field", "/v1/authorities/jwt/revoke", `{"authority_id":"k","force":true}`, http.StatusBadRequest, "unknown field"},
		{"unknown action", "/v1/authorities/x509/retire", "", http.StatusNotFound, ""},
		{"activate with a malformed body", "/v1/authorities/x509/activate", `{"id":"x"}`, http.StatusBadRequest, "unknown field"},
		{"activate with an empty body", "/v1/authorities/x509/activate", ``, http.StatusOK, `"id":"1b1b"`},
		{"not found", "/v1/authorities/jwt/revoke", `{"authority_id":"nope"}`, http.StatusNotFound, `"code":"not_found"`},
		{"failed precondition", "/v1/authorities/x509/taint", `{"authority_id":"2c2c"}`, http.StatusConflict, `"code":"failed_precondition"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := raw(t, e.path, http.MethodPost, tt.target, strings.NewReader(tt.body))
			assert.Equal(t, tt.status, status, body)
			assert.Contains(t, body, tt.contains)
		})
	}
}

func TestNoAuthorityManager(t *testing.T) {
	e := start(t)
	_, err := e.client.Authorities(t.Context())
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, "admin: this server has no CA to operate", err.Error())
	_, err = e.client.ActivateAuthority(t.Context(), registry.AuthorityX509, "")
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = e.client.RevokeAuthority(t.Context(), registry.AuthorityJWT, "k")
	require.ErrorIs(t, err, registry.ErrNotFound)
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
