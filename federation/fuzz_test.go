package federation

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// FuzzReadBundle feeds arbitrary statuses and bodies to the response handling
// of FetchBundle: it must never panic, accept only 200 responses, and return
// bundles of the configured trust domain that survive a round trip.
func FuzzReadBundle(f *testing.F) {
	f.Add(200, []byte(`{"keys":[]}`))
	f.Add(200, []byte(`{"spiffe_refresh_hint":300,"spiffe_sequence":1,"keys":[]}`))
	f.Add(404, []byte(`{"keys":[]}`))
	f.Add(200, []byte(`{"keys":[`))
	td := spiffeid.RequireTrustDomainFromString("partner.test")
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		res := &http.Response{
			StatusCode: status,
			Status:     http.StatusText(status),
			Body:       io.NopCloser(bytes.NewReader(body)),
		}
		bundle, err := readBundle(td, res)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "federation: "))
			return
		}
		require.Equal(t, http.StatusOK, status)
		require.LessOrEqual(t, len(body), maxDocumentSize)
		require.Equal(t, td, bundle.TrustDomain())
		doc, err := bundle.Marshal()
		require.NoError(t, err)
		again, err := spiffebundle.Parse(td, doc)
		require.NoError(t, err)
		require.True(t, bundle.Equal(again))
	})
}

// FuzzCheckURL: endpoint URLs and redirect targets (attacker-chosen) are
// accepted only when they are https, name a host and carry no userinfo
// (Fed rule 8).
func FuzzCheckURL(f *testing.F) {
	f.Add("https://partner.test/bundle")
	f.Add("http://partner.test/bundle")
	f.Add("https://user:pw@partner.test/")
	f.Add("HTTPS://partner.test:8443/a?b#c")
	f.Add("https:///bundle")
	f.Fuzz(func(t *testing.T, raw string) {
		if checkEndpointURL(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, "https", u.Scheme)
		require.Nil(t, u.User)
		require.NotEmpty(t, u.Host)
	})
}
