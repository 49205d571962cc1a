package imdstest

import (
	"io"
	"net/http"
	"strings"
	"testing"

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
