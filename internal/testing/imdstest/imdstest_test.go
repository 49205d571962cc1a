package imdstest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

func TestSpeaksIMDSv2(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the service's cleanup
	f := Start(t, map[string]string{DocumentPath: "{}"})
	c := f.Client()
	// Without a token: 401.
	resp, err := c.Get(f.URL + "/latest/dynamic/" + DocumentPath)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// A token PUT without its TTL header: 400.
	req, _ := http.NewRequest(http.MethodPut, f.URL+"/latest/api/token", nil)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// Proxied: 403.
	req, _ = http.NewRequest(http.MethodPut, f.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	// With a token: the document, and a token's TTL echoed.
	req, _ = http.NewRequest(http.MethodPut, f.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err = c.Do(req)
	require.NoError(t, err)
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "60", resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	req, _ = http.NewRequest(http.MethodGet, f.URL+"/latest/dynamic/"+DocumentPath, nil)
	req.Header.Set("X-aws-ec2-metadata-token", string(tok))
	resp, err = c.Do(req)
	require.NoError(t, err)
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "{}", strings.TrimSpace(string(doc)))
	require.Equal(t, 1, f.Gets())
	require.Equal(t, 1, f.Tokenless())
	c.CloseIdleConnections()
}

// get asks the service for path with a fresh token, and returns the
// status and body.
func get(t *testing.T, s *Server, method, path string) (int, string) {
	t.Helper()
	c := s.Client()
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "21600")
	resp, err := c.Do(req)
	require.NoError(t, err)
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(tok)
	}
	req, _ = http.NewRequestWithContext(t.Context(), method, s.URL+path, nil)
	req.Header.Set("X-aws-ec2-metadata-token", string(tok))
	resp, err = c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

func TestSignedInstance(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	a := NewSigner(t, 0, 1)
	b := NewSigner(t, 1, 1)
	require.Equal(t, a.Cert.RawIssuer, b.Cert.RawIssuer, "same issuer and serial")
	require.Equal(t, a.Cert.SerialNumber, b.Cert.SerialNumber)
	require.NotEqual(t, a.Cert.PublicKey, b.Cert.PublicKey)

	doc := Document("123456789012", "us-east-1", "i-0123456789abcdef0")
	require.Contains(t, doc, `"availabilityZone": "us-east-1a"`)
	data := a.Data(t, doc)
	data["hang"] = Hang
	s := Start(t, data)

	code, body := get(t, s, http.MethodGet, "/latest/dynamic/"+DocumentPath)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, doc, body)
	code, body = get(t, s, http.MethodGet, "/latest/dynamic/"+RSA2048Path)
	require.Equal(t, http.StatusOK, code)
	for _, line := range strings.Split(body, "\n") {
		require.LessOrEqual(t, len(line), 64)
	}
	code, _ = get(t, s, http.MethodGet, "/latest/dynamic/none")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, s, http.MethodPost, "/latest/dynamic/"+DocumentPath)
	require.Equal(t, http.StatusMethodNotAllowed, code)

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/latest/api/token", nil)
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	go get(t, s, http.MethodGet, "/latest/dynamic/hang") // ends with the test
	require.Eventually(t, func() bool { return s.HungCalls() == 1 }, 10*time.Second, 10*time.Millisecond)

	s.SetHugeToken()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPut, s.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err = s.Client().Do(req)
	require.NoError(t, err)
	huge, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Len(t, huge, 1<<20)
	s.SetRefusePUT()
	code, _ = get(t, s, http.MethodGet, "/latest/dynamic/"+DocumentPath)
	require.Equal(t, http.StatusForbidden, code)
}
