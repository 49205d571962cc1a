package gcemdtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// get sends a GET of path with the headers h and returns the status and
// body.
func get(t *testing.T, c *http.Client, url string, h map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

func TestSpeaksMetadataProtocol(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the server's cleanup
	key := NewKey(t, 0)
	inst := TestInstance()
	s := Start(t, key, inst)
	c := s.Client()
	flavor := map[string]string{"Metadata-Flavor": "Google"}
	identity := s.URL + IdentityPrefix + "default/identity"

	code, _, h := get(t, c, identity+"?audience=a&format=full", nil)
	require.Equal(t, http.StatusForbidden, code, "no Metadata-Flavor")
	require.Equal(t, "Google", h.Get("Metadata-Flavor"))
	require.Equal(t, 1, s.Flavorless())
	code, _, _ = get(t, c, identity+"?audience=a", map[string]string{"Metadata-Flavor": "Google", "X-Forwarded-For": "10.0.0.1"})
	require.Equal(t, http.StatusForbidden, code, "proxied")
	code, _, _ = get(t, c, identity, flavor)
	require.Equal(t, http.StatusBadRequest, code, "no audience")
	code, _, _ = get(t, c, identity+"?audience=a&format=odd", flavor)
	require.Equal(t, http.StatusBadRequest, code, "bad format")
	code, _, _ = get(t, c, s.URL+IdentityPrefix+"other@x.iam.gserviceaccount.com/identity?audience=a", flavor)
	require.Equal(t, http.StatusNotFound, code, "unknown account")
	code, _, _ = get(t, c, s.URL+"/computeMetadata/v1/project/project-id", flavor)
	require.Equal(t, http.StatusNotFound, code)
	req, _ := http.NewRequest(http.MethodPost, identity+"?audience=a", nil)
	req.Header.Set("Metadata-Flavor", "Google")
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Zero(t, s.Requests())

	// A full token, by the instance's e-mail too, verifies with the key
	// and says what Google's say.
	for _, account := range []string{"default", inst.ServiceAccount} {
		code, body, _ := get(t, c, s.URL+IdentityPrefix+account+"/identity?audience=aud-1&format=full", flavor)
		require.Equal(t, http.StatusOK, code)
		tok, err := jwt.ParseSigned(body, []jose.SignatureAlgorithm{jose.RS256})
		require.NoError(t, err)
		require.Equal(t, key.ID, tok.Headers[0].KeyID)
		var claims map[string]any
		require.NoError(t, tok.Claims(&key.Private.PublicKey, &claims))
		require.Equal(t, Issuer, claims["iss"])
		require.Equal(t, "aud-1", claims["aud"])
		require.Equal(t, inst.ServiceAccount, claims["email"])
		ce := claims["google"].(map[string]any)["compute_engine"].(map[string]any)
		require.Equal(t, inst.ProjectID, ce["project_id"])
		require.Equal(t, inst.InstanceID, ce["instance_id"])
		require.Equal(t, "aud-1", s.LastAudience())
	}
	require.Equal(t, 2, s.Requests())
	require.Empty(t, s.LastAudience())
	// The standard format has no google claim.
	_, body, _ := get(t, c, identity+"?audience=a", flavor)
	tok, err := jwt.ParseSigned(body, []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	var claims map[string]any
	require.NoError(t, tok.Claims(&key.Private.PublicKey, &claims))
	require.NotContains(t, claims, "google")

	// A body of the test's, and one that never comes.
	s.SetBody("not a token")
	_, body, _ = get(t, c, identity+"?audience=a", flavor)
	require.Equal(t, "not a token", body)
	s.SetBody(Hang)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, identity+"?audience=a", nil)
	req.Header.Set("Metadata-Flavor", "Google")
	_, err = c.Do(req)
	require.Error(t, err)
	require.Equal(t, 1, s.HungCalls())
	require.True(t, strings.HasPrefix(s.URL, "http://"+s.Host()))
}

func TestKeyServer(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	k0, k1 := NewKey(t, 0), NewKey(t, 1)
	require.NotEqual(t, k0.ID, k1.ID)
	require.Len(t, k0.ID, 40)
	s := StartKeys(t, k0)
	c := s.Client()

	code, body, h := get(t, c, s.JWKSURL(), nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, h.Get("Cache-Control"), "max-age=3600")
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal([]byte(body), &set))
	require.Len(t, set.Keys, 1)
	require.Equal(t, k0.ID, set.Keys[0].KeyID)

	s.SetKeys(k0, k1)
	s.SetMaxAge(60)
	code, body, h = get(t, c, s.CertsURL(), nil)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, h.Get("Cache-Control"), "max-age=60")
	var certs map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &certs))
	require.Len(t, certs, 2)
	require.Contains(t, certs[k1.ID], "BEGIN CERTIFICATE")

	code, _, _ = get(t, c, s.URL+"/other", nil)
	require.Equal(t, http.StatusNotFound, code)
	s.SetStatus(http.StatusServiceUnavailable)
	code, _, _ = get(t, c, s.JWKSURL(), nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, 4, s.Fetches())
}

func TestComputeServer(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := StartCompute(t)
	inst := TestInstance()
	s.Add(t, inst, ComputeInstance{Tags: []string{"web"}, Labels: map[string]string{"env": "prod"}, Metadata: map[string]string{"role": "x"}}, "")
	c := s.Client()
	path := s.Endpoint() + "projects/" + inst.ProjectID + "/zones/" + inst.Zone + "/instances/" + inst.InstanceName

	code, _, _ := get(t, c, path, nil)
	require.Equal(t, http.StatusUnauthorized, code)
	code, _, _ = get(t, c, path, map[string]string{"Authorization": "Bearer made-up"})
	require.Equal(t, http.StatusUnauthorized, code)
	require.Equal(t, 2, s.Unauthorized())

	// The token endpoint takes a grant signed by the key file's key.
	keyFile := s.KeyFile(t, t.TempDir())
	b, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	var kf map[string]string
	require.NoError(t, json.Unmarshal(b, &kf))
	require.Equal(t, s.URL+"/token", kf["token_uri"])
	grant := func(key *Key, scope string) (int, string) {
		assertion := key.Sign(t, map[string]any{"iss": kf["client_email"], "scope": scope, "aud": kf["token_uri"],
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		resp, err := c.PostForm(s.URL+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}})
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		tok, _ := out["access_token"].(string)
		return resp.StatusCode, tok
	}
	code, _ = grant(NewKey(t, 0), "https://www.googleapis.com/auth/compute.readonly")
	require.Equal(t, http.StatusBadRequest, code, "another key")
	code, _ = grant(NewKey(t, 2), "https://www.googleapis.com/auth/devstorage.read_only")
	require.Equal(t, http.StatusBadRequest, code, "another scope")
	resp, err := c.Get(s.URL + "/token")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	code, tok := grant(NewKey(t, 2), "https://www.googleapis.com/auth/compute.readonly")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, s.TokenRequests())

	bearer := map[string]string{"Authorization": "Bearer " + tok}
	code, body, _ := get(t, c, path, bearer)
	require.Equal(t, http.StatusOK, code)
	var ci map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &ci))
	require.Equal(t, inst.InstanceID, ci["id"])
	require.Equal(t, map[string]any{"env": "prod"}, ci["labels"])
	require.Equal(t, 1, s.Gets())
	code, _, _ = get(t, c, s.Endpoint()+"projects/p/zones/z/instances/none", bearer)
	require.Equal(t, http.StatusNotFound, code)
	req, _ := http.NewRequest(http.MethodDelete, path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	s.Add(t, inst, ComputeInstance{}, "raw")
	_, body, _ = get(t, c, path, bearer)
	require.Equal(t, "raw", body)
}
