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

// TestMalformedRequests sends what the Client never sends: each must be
// refused with a JSON error and the right status, never a 500.
func TestMalformedRequests(t *testing.T) {
	e := admintest.Start(t)
	created, err := e.Client.CreateEntry(t.Context(), admintest.Entry("/web", "unix:uid:1"))
	require.NoError(t, err)
	big := strings.Repeat(" ", 3<<20) + "{}"
	tests := []struct {
		name, method, target, body string
		status                     int
		contains                   string
	}{
		{"not JSON", "POST", "/v1/entries", "{", http.StatusBadRequest, "malformed request body"},
		{"unknown field", "POST", "/v1/entries", `{"spiffe_id":"spiffe://example.org/a","nope":1}`, http.StatusBadRequest, "unknown field"},
		// Entries grant no power: flags that claimed to are refused, not ignored.
		{"admin flag", "POST", "/v1/entries", `{"spiffe_id":"spiffe://example.org/a","admin":true}`, http.StatusBadRequest, `unknown field \"admin\"`},
		{"two values", "POST", "/v1/entries", `{} {}`, http.StatusBadRequest, "more than one JSON value"},
		{"body too large", "POST", "/v1/entries", big, http.StatusRequestEntityTooLarge, "larger than"},
		{"bad SPIFFE ID", "POST", "/v1/entries", `{"spiffe_id":"http://x"}`, http.StatusBadRequest, "spiffe_id"},
		{"bad parent ID", "POST", "/v1/entries", `{"parent_id":"x"}`, http.StatusBadRequest, "parent_id"},
		{"bad x509 TTL", "POST", "/v1/entries", `{"x509_svid_ttl":"soon"}`, http.StatusBadRequest, "x509_svid_ttl"},
		{"bad JWT TTL", "POST", "/v1/entries", `{"jwt_svid_ttl":"1"}`, http.StatusBadRequest, "jwt_svid_ttl"},
		{"bad federated TD", "POST", "/v1/entries", `{"federates_with":["A B"]}`, http.StatusBadRequest, "federates_with"},
		{"body ID differs from path", "PUT", "/v1/entries/" + created.ID, `{"id":"other","spiffe_id":"spiffe://example.org/web","parent_id":"spiffe://example.org/agent/node1","selectors":[{"type":"unix","value":"uid:1"}],"revision":1}`, http.StatusBadRequest, "differs"},
		{"bad revision", "DELETE", "/v1/entries/" + created.ID + "?revision=x", "", http.StatusBadRequest, "revision"},
		{"negative revision", "DELETE", "/v1/entries/" + created.ID + "?revision=-1", "", http.StatusBadRequest, "revision"},
		{"filter bad SPIFFE ID", "GET", "/v1/entries?spiffe_id=x", "", http.StatusBadRequest, "spiffe_id"},
		{"filter bad parent ID", "GET", "/v1/entries?parent_id=x", "", http.StatusBadRequest, "parent_id"},
		{"filter bad selector", "GET", "/v1/entries?selector=nocolon", "", http.StatusBadRequest, "selector"},
		{"filter bad match", "GET", "/v1/entries?selector=unix:uid:1&selector_match=most", "", http.StatusBadRequest, "match mode"},
		{"filter bad TD", "GET", "/v1/entries?federates_with=A%20B", "", http.StatusBadRequest, "federates_with"},
		{"filter bad TD match", "GET", "/v1/entries?federates_with=a.org&federates_with_match=x", "", http.StatusBadRequest, "match mode"},
		{"filter too many selectors", "GET", "/v1/entries?" + strings.Repeat("selector=a:b&", registry.MaxSelectors+1), "", http.StatusBadRequest, "at most"},
		{"filter too many TDs", "GET", "/v1/entries?" + strings.Repeat("federates_with=a.org&", registry.MaxFederatesWith+1), "", http.StatusBadRequest, "at most"},
		{"filter long hint", "GET", "/v1/entries?hint=" + strings.Repeat("h", registry.MaxHintLen+1), "", http.StatusBadRequest, "hint"},
		{"token not JSON", "POST", "/v1/tokens", "[", http.StatusBadRequest, "malformed"},
		{"token bad TTL", "POST", "/v1/tokens", `{"ttl":"forever"}`, http.StatusBadRequest, "ttl"},
		{"token bad agent ID", "POST", "/v1/tokens", `{"ttl":"1m","agent_id":"x"}`, http.StatusBadRequest, "agent_id"},
		{"bundle bad format", "GET", "/v1/bundle?format=der", "", http.StatusBadRequest, "unknown bundle format"},
		{"federated bad TD", "GET", "/v1/federation/bundles/A%20B", "", http.StatusBadRequest, "trust domain"},
		{"federated set bad TD", "PUT", "/v1/federation/bundles/A%20B", "{}", http.StatusBadRequest, "trust domain"},
		{"federated delete bad TD", "DELETE", "/v1/federation/bundles/A%20B", "", http.StatusBadRequest, "trust domain"},
		{"federated set too large", "PUT", "/v1/federation/bundles/other.org", big, http.StatusRequestEntityTooLarge, "larger than"},
		{"agent ID missing", "DELETE", "/v1/agents", "", http.StatusBadRequest, "required"},
		{"agent ID malformed", "POST", "/v1/agents/ban?id=nope", "", http.StatusBadRequest, "agent ID"},
		{"agent list ID malformed", "GET", "/v1/agents?id=nope", "", http.StatusBadRequest, "agent ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var status int
			var text string
			if body == nil {
				status, text = admintest.Raw(t, e.Path, tt.method, tt.target, nil)
			} else {
				status, text = admintest.Raw(t, e.Path, tt.method, tt.target, body)
			}
			assert.Equal(t, tt.status, status, text)
			assert.Contains(t, text, tt.contains)
			assert.Contains(t, text, `"error":`)
		})
	}
}
