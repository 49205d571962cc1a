package launch_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestParseRequest(t *testing.T) {
	p, err := launch.ParseRequest([]byte(`{"spiffe_id": "spiffe://example.org/sandbox/1", "ttl": "10m", "x509_svid_ttl": "5m", "jwt_svid_ttl": "90s", "hint": "job 1"}`))
	require.NoError(t, err)
	assert.Equal(t, launch.Params{
		SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/sandbox/1"), TTL: 10 * time.Minute,
		X509SVIDTTL: 5 * time.Minute, JWTSVIDTTL: 90 * time.Second, Hint: "job 1",
	}, p)

	p, err = launch.ParseRequest([]byte(`{"spiffe_id": "spiffe://example.org/a"}`))
	require.NoError(t, err)
	assert.Equal(t, launch.Params{SPIFFEID: spiffeid.RequireFromString("spiffe://example.org/a")}, p, "lifetimes default to zero")

	for _, tt := range []struct{ name, body, want string }{
		{"empty", ``, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"no ID", `{"ttl": "1m"}`, "spiffe_id is required"},
		{"bad ID", `{"spiffe_id": "https://example.org/a"}`, "spiffe_id"},
		{"unknown member", `{"spiffe_id": "spiffe://example.org/a", "selectors": []}`, "unknown field"},
		// Two parsers must not disagree on which one counts.
		{"member twice", `{"spiffe_id": "spiffe://example.org/a", "spiffe_id": "spiffe://example.org/b"}`, "appears twice"},
		{"trailing data", `{"spiffe_id": "spiffe://example.org/a"} {}`, "data after"},
		{"bad TTL", `{"spiffe_id": "spiffe://example.org/a", "ttl": "ten minutes"}`, "ttl"},
		{"zero TTL", `{"spiffe_id": "spiffe://example.org/a", "ttl": "0s"}`, "positive"},
		{"negative SVID TTL", `{"spiffe_id": "spiffe://example.org/a", "jwt_svid_ttl": "-1m"}`, "jwt_svid_ttl"},
		{"TTL of a wrong type", `{"spiffe_id": "spiffe://example.org/a", "ttl": 600}`, "not a launch request"},
		{"truncated", `{"spiffe_id": "spiffe://example.org/a"`, "not a launch request"},
		{"too large", `{"hint": "` + strings.Repeat("x", launch.MaxRequestSize) + `"}`, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := launch.ParseRequest([]byte(tt.body))
			require.ErrorIs(t, err, launch.ErrInvalid)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"spiffe_id": "spiffe://example.org/sandbox/1", "ttl": "10m", "x509_svid_ttl": "5m", "jwt_svid_ttl": "90s", "hint": "job 1"}`))
	f.Add([]byte(`{"spiffe_id": "spiffe://example.org/a", "spiffe_id": "spiffe://example.org/b"}`))
	f.Add([]byte(`{"spiffe_id": "spiffe://example.org/a"} {}`))
	f.Add([]byte(`{"ttl": "1h", "hint": "\u0000"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := launch.ParseRequest(body)
		if err != nil {
			require.ErrorIs(t, err, launch.ErrInvalid)
			return
		}
		require.False(t, p.SPIFFEID.IsZero())
		require.GreaterOrEqual(t, p.TTL, time.Duration(0))
		require.GreaterOrEqual(t, p.X509SVIDTTL, time.Duration(0))
		require.GreaterOrEqual(t, p.JWTSVIDTTL, time.Duration(0))
		// What parses survives a round trip.
		m := map[string]string{"spiffe_id": p.SPIFFEID.String(), "hint": p.Hint}
		for name, d := range map[string]time.Duration{"ttl": p.TTL, "x509_svid_ttl": p.X509SVIDTTL, "jwt_svid_ttl": p.JWTSVIDTTL} {
			if d != 0 {
				m[name] = d.String()
			}
		}
		again, err := json.Marshal(m)
		require.NoError(t, err)
		if len(again) > launch.MaxRequestSize {
			return
		}
		q, err := launch.ParseRequest(again)
		require.NoError(t, err)
		require.Equal(t, p, q)
	})
}
