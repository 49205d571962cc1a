package azuretest

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/smallstep/pkcs7"
	"github.com/stretchr/testify/require"
)

func get(t *testing.T, url string, header map[string]string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, header)
}

func do(t *testing.T, method, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

var md = map[string]string{"Metadata": "true"}

func TestIMDSProtocol(t *testing.T) {
	s := StartIMDS(t)
	tok := s.URL + TokenPath + "?api-version=2018-02-01&resource=api://x"

	code, body := get(t, tok, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Required metadata header not specified")
	code, body = get(t, tok, map[string]string{"Metadata": "true", "X-Forwarded-For": "10.0.0.1"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "forwarded header")
	code, body = get(t, s.URL+TokenPath+"?resource=api://x", md)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "newest-versions")
	code, _ = do(t, http.MethodPost, tok, md)
	require.Equal(t, http.StatusMethodNotAllowed, code)
	require.Equal(t, 3, s.Refused())

	code, body = get(t, tok, md)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Identity not found")
	code, body = get(t, s.URL+TokenPath+"?api-version=2018-02-01", md)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "Required audience parameter")

	s.SetToken(func(resource string) string { return "token-for-" + resource })
	code, body = get(t, tok, md)
	require.Equal(t, http.StatusOK, code)
	var r map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &r))
	require.Equal(t, "token-for-api://x", r["access_token"])
	require.Equal(t, "Bearer", r["token_type"])
	require.Equal(t, []string{"api://x", "api://x"}, s.Resources())

	att := s.URL + AttestedPath + "?api-version=2025-04-07&nonce="
	code, _ = get(t, att+"abc", md)
	require.Equal(t, http.StatusNotFound, code)
	s.SetDocument(func(nonce string) string { return "signed-" + nonce })
	code, body = get(t, att+"abc", md)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"encoding":"pkcs7","signature":"signed-abc"}`, body)
	code, _ = get(t, att+"a%2Fb", md)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, []string{"abc", "abc"}, s.Nonces())

	code, _ = get(t, s.URL+"/metadata/instance?api-version=2021-02-01", md)
	require.Equal(t, http.StatusNotFound, code)
	s.SetBody("/metadata/instance", `{"compute":{}}`)
	code, body = get(t, s.URL+"/metadata/instance?api-version=2021-02-01", md)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, `{"compute":{}}`, body)
	s.SetBody(TokenPath, "raw")
	_, body = get(t, tok, md)
	require.Equal(t, "raw", body)
	s.SetBody(AttestedPath, "raw2")
	_, body = get(t, att+"n", md)
	require.Equal(t, "raw2", body)
	require.Equal(t, 5, s.Requests())

	s.SetHang(TokenPath)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tok, nil)
	require.NoError(t, err)
	req.Header.Set("Metadata", "true")
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err)
	require.Equal(t, 1, s.HungCalls())
}

func TestEntra(t *testing.T) {
	e := StartEntra(t)
	k := NewKey(0, "k0")
	tenant := "72f988bf-86f1-41af-91ab-2d7cd011db47"
	e.SetKeys(tenant, k)
	url := strings.ReplaceAll(e.KeysURL(), "{tenant}", tenant)
	code, body := get(t, url, nil)
	require.Equal(t, http.StatusOK, code)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal([]byte(body), &set))
	require.Len(t, set.Keys, 1)
	require.Equal(t, "k0", set.Keys[0].KeyID)

	code, body = get(t, strings.ReplaceAll(e.KeysURL(), "{tenant}", "other"), nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "AADSTS90002")
	e.SetBody(tenant, "x")
	_, body = get(t, url, nil)
	require.Equal(t, "x", body)
	require.Equal(t, 2, e.Fetches())

	claims := MSIClaims(tenant, "p", "api://x", VMResourceID("s", "g", "v"))
	tok, err := jwt.ParseSigned(k.Sign(t, claims), []jose.SignatureAlgorithm{jose.RS256})
	require.NoError(t, err)
	require.Equal(t, "k0", tok.Headers[0].KeyID)
	var c struct {
		jwt.Claims
		MIRID string `json:"xms_mirid"`
	}
	require.NoError(t, tok.Claims(&k.Private.PublicKey, &c))
	require.Equal(t, "https://sts.windows.net/"+tenant+"/", c.Issuer)
	require.Equal(t, "/subscriptions/s/resourcegroups/g/providers/Microsoft.Compute/virtualMachines/v", c.MIRID)
	require.NoError(t, c.Validate(jwt.Expected{AnyAudience: jwt.Audience{"api://x"}, Time: time.Now()}))
	_, ok := MSIClaims(tenant, "p", "r", "")["xms_mirid"]
	require.False(t, ok)
}

func TestCA(t *testing.T) {
	ca := NewCA(t, "metadata.azure.com")
	require.NoError(t, ca.Leaf.VerifyHostname("metadata.azure.com"))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	code, body := get(t, ca.Leaf.IssuingCertificateURL[0], nil)
	require.Equal(t, http.StatusOK, code)
	inter, err := x509.ParseCertificate([]byte(body))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(inter)
	_, err = ca.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)
	require.Equal(t, 1, ca.AIAFetches())
	code, _ = get(t, ca.AIA.URL+"/other", nil)
	require.Equal(t, http.StatusNotFound, code)
	// Another CA's root has a key of its own.
	require.False(t, NewCA(t, "x").Root.PublicKey.(*rsa.PublicKey).Equal(ca.Root.PublicKey))

	doc := Document(t, "n1", "vm", "sub")
	der, err := base64.StdEncoding.DecodeString(ca.Sign(t, doc))
	require.NoError(t, err)
	p7, err := pkcs7.Parse(der)
	require.NoError(t, err)
	require.Equal(t, doc, p7.Content)
	require.Len(t, p7.Certificates, 1)
	require.NoError(t, p7.Verify())
	var m map[string]any
	require.NoError(t, json.Unmarshal(doc, &m))
	require.Equal(t, "n1", m["nonce"])
	ts := m["timeStamp"].(map[string]any)
	_, err = time.Parse(AttestedFormat, ts["expiresOn"].(string))
	require.NoError(t, err)
}
