package azuremeta

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

func TestGet(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the service's cleanup
	imds := azuretest.StartIMDS(t)
	imds.SetToken(func(resource string) string { return "a.b." + resource })
	c, err := New(imds.URL+"/", time.Second)
	require.NoError(t, err)

	body, err := c.Get(t.Context(), azuretest.TokenPath, url.Values{"api-version": {"2018-02-01"}, "resource": {"r"}})
	require.NoError(t, err)
	require.Contains(t, string(body), `"access_token":"a.b.r"`)
	require.Zero(t, imds.Refused(), "the Metadata header is sent")

	// The service's errors, its message kept.
	_, err = c.Get(t.Context(), azuretest.TokenPath, url.Values{"resource": {"r"}})
	require.ErrorContains(t, err, "status 400: Bad request. api-version is invalid")
	_, err = c.Get(t.Context(), azuretest.TokenPath, url.Values{"api-version": {"2018-02-01"}})
	require.ErrorContains(t, err, "status 400: invalid_request: Required audience parameter not specified")
	_, err = c.Get(t.Context(), "/metadata/nothing", url.Values{"api-version": {"2018-02-01"}})
	require.ErrorContains(t, err, "status 404: Not found")

	imds.SetBody("/metadata/huge", strings.Repeat("x", MaxResponse+1))
	_, err = c.Get(t.Context(), "/metadata/huge", url.Values{"api-version": {"2018-02-01"}})
	require.ErrorContains(t, err, "larger than 32768 bytes")
	imds.SetBody("/metadata/max", strings.Repeat("x", MaxResponse))
	body, err = c.Get(t.Context(), "/metadata/max", url.Values{"api-version": {"2018-02-01"}})
	require.NoError(t, err)
	require.Len(t, body, MaxResponse)
}

func TestErrorOf(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/text":
			http.Error(w, "service unavailable\x01", http.StatusServiceUnavailable)
		case "/empty":
			w.WriteHeader(http.StatusGone)
		default:
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(strings.Repeat("z", 500)))
		}
	}))
	defer plain.Close()
	c, err := New(plain.URL, time.Second)
	require.NoError(t, err)
	_, err = c.Get(t.Context(), "/text", nil)
	require.ErrorContains(t, err, `status 503: "service unavailable\x01"`)
	_, err = c.Get(t.Context(), "/empty", nil)
	require.ErrorContains(t, err, "status 410: no message")
	_, err = c.Get(t.Context(), "/long", nil)
	require.ErrorContains(t, err, "status 429: "+strings.Repeat("z", 128)+"...")
}

func TestNew(t *testing.T) {
	c, err := New("", time.Second)
	require.NoError(t, err)
	require.Equal(t, DefaultEndpoint, c.base.String())
	for _, e := range []string{"169.254.169.254", "ftp://x", "http://", "://", "http://x/?a=b", "http://x/#f"} {
		_, err := New(e, time.Second)
		require.ErrorContains(t, err, "want an http:// or https:// URL", e)
	}
	c, err = New("http://127.0.0.1:1", time.Second)
	require.NoError(t, err)
	_, err = c.Get(t.Context(), "/x", nil)
	require.Error(t, err)
	_, err = c.Get(t.Context(), "/\x7f", nil)
	require.Error(t, err)
}
