package oauthsvid_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/oauthsvid"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// tokenEndpoint is a small authorization server's token endpoint: it
// authenticates the client with v and issues client_credentials tokens.
func tokenEndpoint(v *oauthsvid.Validator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := v.Authenticate(r)
		if err != nil {
			oauthsvid.WriteError(w, err)
			return
		}
		if r.PostForm.Get("grant_type") != "client_credentials" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"unsupported_grant_type"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": "at-for-" + c.ClientID, "token_type": "Bearer", "expires_in": 300, "scope": r.PostForm.Get("scope"),
		})
	})
}

func TestClientToken(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	d := newDomain(t, "example.org")
	v := newValidator(t, d, nil)
	srv := httptest.NewTLSServer(tokenEndpoint(v))
	t.Cleanup(srv.Close)
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)

	c := &oauthsvid.Client{TokenURL: srv.URL + "/token", Audience: issuer, JWTSource: jwtSource{d, "/client", t}, HTTPClient: hc}
	tok, err := c.Token(t.Context(), url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}})
	require.NoError(t, err)
	assert.Equal(t, &oauthsvid.Token{AccessToken: "at-for-spiffe://example.org/client", TokenType: "Bearer", Scope: "read", ExpiresIn: 5 * time.Minute}, tok)

	// A wrong audience is refused by the server.
	wrong := *c
	wrong.Audience = srv.URL + "/token"
	_, err = wrong.Token(t.Context(), url.Values{"grant_type": {"client_credentials"}})
	e, ok := errors.AsType[*oauthsvid.TokenError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, &oauthsvid.TokenError{StatusCode: http.StatusUnauthorized, Code: "invalid_client", Description: "invalid client assertion"}, e)
	assert.Equal(t, "oauthsvid: token endpoint answered 401: invalid_client: invalid client assertion", e.Error())

	// Errors of the grant come back as TokenError too.
	_, err = c.Token(t.Context(), url.Values{"grant_type": {"password"}})
	e, ok = errors.AsType[*oauthsvid.TokenError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "unsupported_grant_type", e.Code)
	assert.Equal(t, "oauthsvid: token endpoint answered 400: unsupported_grant_type", e.Error())
}

type failingSource struct{}

func (failingSource) FetchJWTSVID(context.Context, jwtsvid.Params) (*jwtsvid.SVID, error) {
	return nil, errors.New("no identity")
}

func TestClientRefuses(t *testing.T) {
	d := newDomain(t, "example.org")
	src := jwtSource{d, "/client", t}
	for name, tc := range map[string]struct {
		c      oauthsvid.Client
		params url.Values
	}{
		"no token URL":          {oauthsvid.Client{Audience: issuer, JWTSource: src}, nil},
		"no audience":           {oauthsvid.Client{TokenURL: tokenURL, JWTSource: src}, nil},
		"X.509 without an ID":   {oauthsvid.Client{TokenURL: tokenURL}, nil},
		"source fails":          {oauthsvid.Client{TokenURL: tokenURL, Audience: issuer, JWTSource: failingSource{}}, nil},
		"caller sets assertion": {oauthsvid.Client{TokenURL: tokenURL, Audience: issuer, JWTSource: src}, url.Values{"client_assertion": {"x"}}},
		"caller sets secret":    {oauthsvid.Client{TokenURL: tokenURL, Audience: issuer, JWTSource: src}, url.Values{"client_secret": {"x"}}},
		"bad URL":               {oauthsvid.Client{TokenURL: "://", Audience: issuer, JWTSource: src}, nil},
		"unreachable":           {oauthsvid.Client{TokenURL: "http://127.0.0.1:1/token", Audience: issuer, JWTSource: src}, nil},
	} {
		_, err := tc.c.Token(t.Context(), tc.params)
		require.Error(t, err, name)
	}
}

// TestClientSendsForm checks the parameters each method sends.
func TestClientSendsForm(t *testing.T) {
	d := newDomain(t, "example.org")
	var got url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = r.PostForm
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprint(w, `{"access_token":"a","token_type":"Bearer"}`)
	}))
	t.Cleanup(srv.Close)

	c := &oauthsvid.Client{TokenURL: srv.URL, ID: d.id("/client")}
	_, err := c.Token(t.Context(), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}})
	require.NoError(t, err)
	assert.Equal(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}, "client_id": {"spiffe://example.org/client"}}, got)

	c = &oauthsvid.Client{TokenURL: srv.URL, Audience: issuer, JWTSource: jwtSource{d, "/client", t}, ClientID: "https://example.org/client/metadata.json"}
	_, err = c.Token(t.Context(), url.Values{"grant_type": {"client_credentials"}})
	require.NoError(t, err)
	assert.Equal(t, oauthsvid.AssertionType, got.Get("client_assertion_type"))
	assert.Equal(t, "https://example.org/client/metadata.json", got.Get("client_id"))
	svid, err := jwtsvid.ParseInsecure(got.Get("client_assertion"), []string{issuer})
	require.NoError(t, err)
	assert.Equal(t, []string{issuer}, svid.Audience)
}

func TestClientResponses(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		ctype  string
		body   string
		ok     bool
	}{
		"ok":                   {200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":60}`, true},
		"no expires_in":        {200, "application/json", `{"access_token":"a","token_type":"Bearer"}`, true},
		"expires_in fraction":  {200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":1.5}`, false},
		"expires_in negative":  {200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":-1}`, false},
		"expires_in huge":      {200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":99999999999999}`, false},
		"no access token":      {200, "application/json", `{"token_type":"Bearer"}`, false},
		"no token type":        {200, "application/json", `{"access_token":"a"}`, false},
		"not JSON":             {200, "application/json", `access_token=a`, false},
		"HTML":                 {200, "text/html", `<html>`, false},
		"error":                {401, "application/json", `{"error":"invalid_client"}`, false},
		"error not JSON":       {502, "text/plain", `bad gateway`, false},
		"error without a code": {400, "application/json", `{}`, false},
		"too large":            {200, "application/json", `{"access_token":"` + strings.Repeat("a", oauthsvid.MaxResponseSize) + `","token_type":"Bearer"}`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tc.ctype)
			w.WriteHeader(tc.status)
			fmt.Fprint(w, tc.body)
		}))
		c := &oauthsvid.Client{TokenURL: srv.URL, ClientID: "c"}
		_, err := c.Token(t.Context(), nil)
		srv.Close()
		if tc.ok {
			require.NoError(t, err, name)
		} else {
			require.Error(t, err, name)
		}
	}
}
