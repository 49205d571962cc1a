package admin_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestClientErrorCodes: the code of an error answer decides the sentinel
// the client's error wraps, whatever the status; the message is the
// server's.
func TestClientErrorCodes(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
		want   error
	}{
		{http.StatusBadRequest, "invalid", registry.ErrInvalid},
		{http.StatusNotFound, "not_found", registry.ErrNotFound},
		{http.StatusConflict, "conflict", registry.ErrConflict},
		{http.StatusConflict, "already_exists", registry.ErrAlreadyExists},
		{http.StatusForbidden, "permission_denied", admin.ErrPermissionDenied},
		{http.StatusConflict, "failed_precondition", admin.ErrFailedPrecondition},
		{http.StatusServiceUnavailable, "unavailable", admin.ErrUnavailable},
		{http.StatusForbidden, "", admin.ErrPermissionDenied}, // a 403 of no code is still a refusal
	} {
		t.Run(tt.code, func(t *testing.T) {
			_, err := canned(t, tt.status, `{"error":"admin: it says why","code":"`+tt.code+`"}`).Entry(t.Context(), "e1")
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), "admin: it says why")
		})
	}
	_, err := canned(t, http.StatusInternalServerError, `{"error":"admin: internal error","code":"internal"}`).Entry(t.Context(), "e1")
	require.EqualError(t, err, "admin: internal error")
	for _, sentinel := range []error{registry.ErrInvalid, registry.ErrNotFound, admin.ErrPermissionDenied, admin.ErrUnavailable} {
		assert.NotErrorIs(t, err, sentinel)
	}
}

// TestClientAnswerOfAnotherAPI: an answer not of the admin API's form
// (the launcher API's, a plain HTTP server's) says so, and wraps no
// sentinel: its 403 or 404 means nothing of the admin API.
func TestClientAnswerOfAnotherAPI(t *testing.T) {
	for name, answer := range map[string]struct {
		status int
		body   string
	}{
		"launcher API":    {http.StatusForbidden, `{"error":"permission_denied","message":"uid 7 may not launch"}`},
		"not JSON":        {http.StatusNotFound, "404 page not found\n"},
		"error left out":  {http.StatusNotFound, `{"code":"not_found"}`},
		"empty body":      {http.StatusBadRequest, ``},
		"another payload": {http.StatusConflict, `[1,2,3]`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := canned(t, answer.status, answer.body).ListEntries(t.Context(), registry.Filter{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), "not as the admin API does: is it the server's admin socket (-admin-socket)?")
			for _, sentinel := range []error{registry.ErrNotFound, registry.ErrInvalid, registry.ErrConflict, admin.ErrPermissionDenied} {
				assert.NotErrorIs(t, err, sentinel)
			}
		})
	}
}

// TestClientMalformedAnswers: the client checks what the server answers
// before it returns it.
func TestClientMalformedAnswers(t *testing.T) {
	other := spiffeid.RequireTrustDomainFromString("other.org")
	for _, tt := range []struct {
		name, answer, want string
		call               func(context.Context, *admin.Client) error
	}{
		{"entry", `{"spiffe_id":"web"}`, "admin: malformed entry in answer: spiffe_id: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.Entry(ctx, "e1")
			return err
		}},
		{"entry list", `{"entries":[{"parent_id":"spiffe://"}]}`, "admin: malformed entry in answer: parent_id: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.ListEntries(ctx, registry.Filter{})
			return err
		}},
		{"not JSON", `{"entries":`, "admin: malformed answer to GET /v1/entries: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.ListEntries(ctx, registry.Filter{})
			return err
		}},
		{"status", `{"trust_domain":"Not A Domain","healthy":true}`, "admin: malformed status in answer: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.Status(ctx)
			return err
		}},
		{"bundle list", `{"bundles":[{"trust_domain":"","document":{}}]}`, "admin: malformed bundle in answer: trust domain: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.ListFederatedBundles(ctx)
			return err
		}},
		{"agent list", `{"agents":[{"id":"node1"}]}`, "admin: malformed agent in answer: agent id: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.ListAgents(ctx)
			return err
		}},
		{"two agents for one ID", `{"agents":[]}`, "admin: server answered 0 agents for one ID", func(ctx context.Context, c *admin.Client) error {
			_, err := c.Agent(ctx, spiffeid.RequireFromPath(td, "/spiffekit/agent/x"))
			return err
		}},
		{"banned agent", `{"id":"node1"}`, "admin: malformed agent in answer: agent id: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.BanAgent(ctx, spiffeid.RequireFromPath(td, "/spiffekit/agent/x"))
			return err
		}},
		{"relationship list", `{"relationships":[{"trust_domain":"b.test","endpoint_spiffe_id":"https://b.test/s"}]}`,
			"admin: malformed federation relationship in answer: endpoint_spiffe_id: ", func(ctx context.Context, c *admin.Client) error {
				_, err := c.FederationRelationships(ctx)
				return err
			}},
		{"refresh of another trust domain", `{"trust_domain":"b.test","changed":true}`, `admin: malformed refresh answer: trust domain "b.test"`,
			func(ctx context.Context, c *admin.Client) error {
				_, err := c.RefreshFederationRelationship(ctx, other)
				return err
			}},
		{"authority", `{"authorities":[{"kind":"x509","id":"a","state":"retired"}]}`, `admin: malformed authority in answer: unknown authority state "retired"`,
			func(ctx context.Context, c *admin.Client) error {
				_, err := c.Authorities(ctx)
				return err
			}},
		{"minted X509-SVID without a certificate", `{"x509_svid":[],"root_cas":[]}`, "admin: malformed answer: no certificate", func(ctx context.Context, c *admin.Client) error {
			_, err := c.MintX509SVID(ctx, []byte("csr"), 0)
			return err
		}},
		{"minted X509-SVID not DER", `{"x509_svid":["AAEC"],"root_cas":[]}`, "admin: malformed certificate in answer: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.MintX509SVID(ctx, []byte("csr"), time.Hour)
			return err
		}},
		{"minted JWT-SVID not a token", `{"token":"a.b.c"}`, "admin: malformed token in answer: ", func(ctx context.Context, c *admin.Client) error {
			_, err := c.MintJWTSVID(ctx, spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t.Context(), canned(t, http.StatusOK, tt.answer))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestClientChecksArguments: a call missing what names its object fails
// with registry.ErrInvalid before any request: the client here has no
// server to reach.
func TestClientChecksArguments(t *testing.T) {
	c := admin.Dial(filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	ctx := t.Context()
	var zero spiffeid.TrustDomain
	for name, call := range map[string]func() error{
		"set bundle":       func() error { _, err := c.SetFederatedBundle(ctx, zero, []byte(`{}`)); return err },
		"get bundle":       func() error { _, err := c.FederatedBundle(ctx, zero); return err },
		"delete bundle":    func() error { _, err := c.DeleteFederatedBundle(ctx, zero, admin.DeleteEntries); return err },
		"get relationship": func() error { _, err := c.FederationRelationship(ctx, zero); return err },
		"update relationship": func() error {
			_, err := c.UpdateFederationRelationship(ctx, registry.FederationRelationship{})
			return err
		},
		"delete relationship": func() error { return c.DeleteFederationRelationship(ctx, zero) },
		"refresh":             func() error { _, err := c.RefreshFederationRelationship(ctx, zero); return err },
		"get agent":           func() error { _, err := c.Agent(ctx, spiffeid.ID{}); return err },
		"evict agent":         func() error { return c.EvictAgent(ctx, spiffeid.ID{}) },
		"ban agent":           func() error { _, err := c.BanAgent(ctx, spiffeid.ID{}); return err },
		"count with a bad filter": func() error {
			_, err := c.CountEntries(ctx, registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{}})
			return err
		},
		"taint without an ID":    func() error { _, err := c.TaintAuthority(ctx, registry.AuthorityJWT, ""); return err },
		"an unknown kind":        func() error { _, err := c.PrepareAuthority(ctx, "rsa"); return err },
		"revoke without an ID":   func() error { _, err := c.RevokeAuthority(ctx, registry.AuthorityWIT, ""); return err },
		"update without an ID":   func() error { _, err := c.UpdateEntry(ctx, registry.Entry{}); return err },
		"delete without an ID":   func() error { _, err := c.DeleteEntry(ctx, "", 1); return err },
		"an entry without an ID": func() error { _, err := c.Entry(ctx, ""); return err },
	} {
		err := call()
		require.ErrorIs(t, err, registry.ErrInvalid, name)
		assert.NotContains(t, err.Error(), "cannot reach", name)
	}
}

// TestClientCountsAndStatus: the counts, the status and the bundle the
// client returns are the server's.
func TestClientCountsAndStatus(t *testing.T) {
	e := admintest.Start(t, func(c *adminserver.Config) {
		c.Health = func(context.Context) error { return errors.New("server: no active X.509 CA") }
	})
	ctx := t.Context()
	for _, p := range []string{"/a", "/b"} {
		_, err := e.Client.CreateEntry(ctx, admintest.Entry(p, "unix:uid:1"))
		require.NoError(t, err)
	}
	mode, err := admin.ParseMatchMode("subset")
	require.NoError(t, err)
	n, err := e.Client.CountEntries(ctx, registry.Filter{BySelectors: &registry.SelectorFilter{
		Selectors: admintest.Entry("/x", "unix:uid:1", "unix:gid:1").Selectors, Match: mode}})
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	_, err = admin.ParseMatchMode("most")
	require.ErrorIs(t, err, registry.ErrInvalid)

	_, err = e.Store.PutAgent(ctx, registry.Agent{ID: spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/one"),
		AttestorType: "join_token", SerialNumber: "1", ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	n, err = e.Client.CountAgents(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)

	st, err := e.Client.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, admin.Status{TrustDomain: td, Reason: "server: no active X.509 CA"}, st)

	pem, err := e.Client.Bundle(ctx, admin.FormatPEM)
	require.NoError(t, err)
	want, err := e.CA.X509Bundle().Marshal()
	require.NoError(t, err)
	assert.Equal(t, want, pem)
}
