package adminserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// TestMintRefusals: every request the API must not sign is refused with
// the reason, and none reaches the minter.
func TestMintRefusals(t *testing.T) {
	e, mi := admintest.StartMinting(t)
	ctx := t.Context()
	x509Tests := []struct {
		name string
		uris []string
		dns  []string
		ttl  time.Duration
		msg  string
	}{
		{"no URI", nil, nil, 0, "the CSR must name exactly one URI, the SPIFFE ID; it names 0"},
		{"two URIs", []string{"spiffe://example.org/a", "spiffe://example.org/b"}, nil, 0, "it names 2"},
		{"not a SPIFFE ID", []string{"https://example.org/a"}, nil, 0, "the CSR's URI: "},
		{"another trust domain", []string{"spiffe://other.org/a"}, nil, 0, "spiffe://other.org/a is not in trust domain example.org, the only one this server signs for"},
		{"no path", []string{"spiffe://example.org"}, nil, 0, "spiffe://example.org has no path: an SVID names a workload"},
		{"the server's ID", []string{"spiffe://example.org/spiffekit/server"}, nil, 0, "spiffe://example.org/spiffekit/server is reserved for the server and its agents"},
		{"an agent's ID", []string{"spiffe://example.org/spiffekit/agent/join_token/x"}, nil, 0, "is reserved for the server and its agents"},
		{"negative TTL", []string{"spiffe://example.org/a"}, nil, -time.Second, "ttl -1s is negative"},
		{"TTL too long", []string{"spiffe://example.org/a"}, nil, adminserver.MaxMintTTL + time.Hour, "is longer than"},
	}
	for _, tt := range x509Tests {
		t.Run("x509 "+tt.name, func(t *testing.T) {
			csr, _ := admintest.CSR(t, tt.uris, tt.dns...)
			_, err := e.Client.MintX509SVID(ctx, csr, tt.ttl)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	jwtTests := []struct {
		name     string
		id       spiffeid.ID
		audience []string
		ttl      time.Duration
		msg      string
	}{
		{"no audience", spiffeid.RequireFromPath(td, "/a"), nil, 0, "at least one audience is required"},
		{"empty audience", spiffeid.RequireFromPath(td, "/a"), []string{"db", ""}, 0, "an audience must not be empty"},
		{"reserved", spiffeid.RequireFromPath(td, "/spiffekit/server"), []string{"db"}, 0, "is reserved"},
		{"another trust domain", spiffeid.RequireFromString("spiffe://other.org/a"), []string{"db"}, 0, "not in trust domain"},
		{"negative TTL", spiffeid.RequireFromPath(td, "/a"), []string{"db"}, -time.Minute, "is negative"},
	}
	for _, tt := range jwtTests {
		t.Run("jwt "+tt.name, func(t *testing.T) {
			_, err := e.Client.MintJWTSVID(ctx, tt.id, tt.audience, tt.ttl)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	assert.NotContains(t, e.Log.String(), "minted")

	// Hand-made requests the client never sends.
	csr, _ := admintest.CSR(t, []string{"spiffe://example.org/a"})
	tampered := append([]byte(nil), csr...)
	tampered[len(tampered)-3] ^= 0xff
	for _, tt := range []struct {
		name, target string
		body         any
		msg          string
	}{
		{"malformed CSR", "/v1/svids/x509", map[string]any{"csr": []byte("nope")}, "malformed CSR"},
		{"CSR signature", "/v1/svids/x509", map[string]any{"csr": tampered}, "the CSR's signature does not verify"},
		{"malformed TTL", "/v1/svids/x509", map[string]any{"csr": csr, "ttl": "soon"}, `ttl: time: invalid duration`},
		{"unknown field", "/v1/svids/x509", map[string]any{"csr": csr, "key": "x"}, "unknown field"},
		{"malformed ID", "/v1/svids/jwt", map[string]any{"spiffe_id": "example.org/a", "audience": []string{"db"}}, "spiffe_id: "},
		{"malformed JWT TTL", "/v1/svids/jwt", map[string]any{"spiffe_id": "spiffe://example.org/a", "audience": []string{"db"}, "ttl": "1y"}, "ttl: "},
		{"JWT unknown field", "/v1/svids/jwt", map[string]any{"spiffe_id": "spiffe://example.org/a", "aud": "db"}, "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(tt.body)
			require.NoError(t, err)
			status, answer := admintest.Raw(t, e.Path, http.MethodPost, tt.target, strings.NewReader(string(body)))
			assert.Equal(t, http.StatusBadRequest, status, answer)
			assert.Contains(t, answer, tt.msg)
			assert.Contains(t, answer, `"code":"invalid"`)
		})
	}

	// What the minter refuses as invalid is said; anything else is an
	// internal error, logged.
	mi.SetErr(fmt.Errorf("ca: DNS name %q is not allowed: %w", "a_b", registry.ErrInvalid))
	_, err := e.Client.MintX509SVID(ctx, csr, 0)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), `DNS name "a_b" is not allowed`)
	mi.SetErr(errors.New("signer on fire"))
	_, err = e.Client.MintJWTSVID(ctx, spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
	require.Error(t, err)
	assert.Equal(t, "admin: internal error", err.Error())
	assert.Contains(t, e.Log.String(), "signer on fire")
}

func TestMintWithoutMinter(t *testing.T) {
	e := admintest.Start(t)
	csr, _ := admintest.CSR(t, []string{"spiffe://example.org/a"})
	_, err := e.Client.MintX509SVID(t.Context(), csr, 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, "admin: this server mints no SVIDs on request", err.Error())
	_, err = e.Client.MintJWTSVID(t.Context(), spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

// TestMintNeedsAnAllowedUID: minting is refused, like every call, to a uid
// that may not administer the server.
func TestMintNeedsAnAllowedUID(t *testing.T) {
	e, _ := admintest.StartMinting(t, func(c *adminserver.Config) { c.AllowedUIDs = []int{123456789} })
	csr, _ := admintest.CSR(t, []string{"spiffe://example.org/a"})
	_, err := e.Client.MintX509SVID(t.Context(), csr, 0)
	require.ErrorIs(t, err, admin.ErrPermissionDenied)
	_, err = e.Client.MintJWTSVID(t.Context(), spiffeid.RequireFromPath(td, "/a"), []string{"db"}, 0)
	require.ErrorIs(t, err, admin.ErrPermissionDenied)
	assert.NotContains(t, e.Log.String(), "minted")
}
