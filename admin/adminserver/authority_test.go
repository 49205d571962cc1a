package adminserver_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
)

func TestAuthorityRequests(t *testing.T) {
	f := admintest.NewAuthorities(admintest.SampleAuthorities())
	e := admintest.Start(t, admintest.WithAuthorities(f))
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
			status, body := admintest.Raw(t, e.Path, http.MethodPost, tt.target, strings.NewReader(tt.body))
			assert.Equal(t, tt.status, status, body)
			assert.Contains(t, body, tt.contains)
		})
	}
}

func TestNoAuthorityManager(t *testing.T) {
	e := admintest.Start(t)
	_, err := e.Client.Authorities(t.Context())
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Equal(t, "admin: this server has no CA to operate", err.Error())
	_, err = e.Client.ActivateAuthority(t.Context(), registry.AuthorityX509, "")
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = e.Client.RevokeAuthority(t.Context(), registry.AuthorityJWT, "k")
	require.ErrorIs(t, err, registry.ErrNotFound)
}
