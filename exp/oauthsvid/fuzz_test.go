package oauthsvid

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseTokenResponse reads arbitrary token endpoint answers. Nothing
// may panic; an accepted answer has an access token and a token type.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"a","token_type":"Bearer","expires_in":60,"scope":"s","refresh_token":"r"}`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_client","error_description":"d"}`))
	f.Add(200, "application/json; charset=utf-8", []byte(`{"access_token":"a","token_type":"Bearer","expires_in":1e3}`))
	f.Add(500, "text/html", []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, ctype string, body []byte) {
		tok, err := parseTokenResponse(status, ctype, body)
		if err != nil {
			return
		}
		require.Equal(t, 200, status)
		require.NotEmpty(t, tok.AccessToken)
		require.NotEmpty(t, tok.TokenType)
		require.GreaterOrEqual(t, tok.ExpiresIn, 0*tok.ExpiresIn)
	})
}

// FuzzParsePattern parses spiffe_id client metadata values; a pattern
// parsed prints as a value that parses to itself.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"spiffe://example.org/client/*", "spiffe://example.org/client", "spiffe://example.org/*", "spiffe://x/*/*", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		again, err := ParsePattern(p.String())
		require.NoError(t, err)
		require.Equal(t, p, again)
	})
}
