package gcpiit

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/gcemdtest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// computeServer returns a server that reads instances from api with its
// service account key file.
func computeServer(t *testing.T, api *gcemdtest.ComputeServer, c InstanceMetadataConfig) *Server {
	t.Helper()
	if c.ServiceAccountFile == "" {
		c.ServiceAccountFile = api.KeyFile(t, t.TempDir())
	}
	c.Endpoint = api.Endpoint()
	c.HTTPClient = api.Client()
	return newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, gcemdtest.NewKey(t, 0)), InstanceMetadata: &c})
}

func TestInstanceMetadata(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	google := gcemdtest.NewKey(t, 0)
	inst := gcemdtest.TestInstance()
	api := gcemdtest.StartCompute(t)
	api.Add(t, inst, gcemdtest.ComputeInstance{
		Tags:     []string{"web", "http-server"},
		Labels:   map[string]string{"env": "prod", "team": "a", "secret": "x"},
		Metadata: map[string]string{"role": "frontend", "startup-script": "echo hi", "big": strings.Repeat("b", 200)},
	}, "")
	srv := computeServer(t, api, InstanceMetadataConfig{AllowedLabelKeys: []string{"env", "team"}, AllowedMetadataKeys: []string{"role", "absent"}})
	tok := []byte(google.Sign(t, claims()))
	for range 2 {
		res, err := srv.Attest(t.Context(), td, tok, nil)
		require.NoError(t, err)
		want := attest.NewSelectors(
			attest.Selector{Type: Type, Value: "project-id:example-project"},
			attest.Selector{Type: Type, Value: "zone:us-central1-a"},
			attest.Selector{Type: Type, Value: "instance-name:node-1"},
			attest.Selector{Type: Type, Value: "instance-id:4567891234567891234"},
			attest.Selector{Type: Type, Value: "project-number:123456789012"},
			attest.Selector{Type: Type, Value: "sa:node@example-project.iam.gserviceaccount.com"},
			attest.Selector{Type: Type, Value: "tag:web"},
			attest.Selector{Type: Type, Value: "tag:http-server"},
			attest.Selector{Type: Type, Value: "label:env:prod"},
			attest.Selector{Type: Type, Value: "label:team:a"},
			attest.Selector{Type: Type, Value: "metadata:role:frontend"},
		)
		require.True(t, want.Equal(res.Selectors), "got %v", res.Selectors)
	}
	require.Equal(t, 2, api.Gets())
	require.Equal(t, 1, api.TokenRequests(), "the access token is reused")
	require.Zero(t, api.Unauthorized())

	// A metadata value over the bound refuses the instance.
	big := computeServer(t, api, InstanceMetadataConfig{AllowedMetadataKeys: []string{"big"}})
	_, err := big.Attest(t.Context(), td, tok, nil)
	requireRejected(t, err, `metadata "big" is 200 bytes, more than the 128 allowed`)
	bigger := computeServer(t, api, InstanceMetadataConfig{AllowedMetadataKeys: []string{"big"}, MaxMetadataValueSize: 256})
	res, err := bigger.Attest(t.Context(), td, tok, nil)
	require.NoError(t, err)
	require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "metadata:big:" + strings.Repeat("b", 200)}))
}

// TestInstanceMetadataAttacks: a token of an instance that is gone, or
// whose name another instance now has, is refused; an API that fails or
// floods is not a rejection.
func TestInstanceMetadataAttacks(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	inst := gcemdtest.TestInstance()
	api := gcemdtest.StartCompute(t)
	srv := computeServer(t, api, InstanceMetadataConfig{})
	tok := []byte(google.Sign(t, claims()))

	_, err := srv.Attest(t.Context(), td, tok, nil)
	requireRejected(t, err, "the Compute API has no such instance node-1 in us-central1-a of project example-project")

	recreated := inst
	recreated.InstanceID = "999"
	api.Add(t, recreated, gcemdtest.ComputeInstance{}, "")
	_, err = srv.Attest(t.Context(), td, tok, nil)
	requireRejected(t, err, `instance node-1 in us-central1-a is "999" in the Compute API, not the token's 4567891234567891234`)

	for raw, msg := range map[string]string{
		"{": "Compute API: instance node-1",
		`{"id":` + strings.Repeat(" ", 1<<20) + `"1"}`: "more than 1048576 bytes",
	} {
		api.Add(t, inst, gcemdtest.ComputeInstance{}, raw)
		_, err = srv.Attest(t.Context(), td, tok, nil)
		require.ErrorContains(t, err, msg)
		require.NotErrorIs(t, err, attest.ErrNodeRejected)
	}

	// Credentials the token endpoint refuses: the API is not read.
	other := gcemdtest.StartCompute(t)
	keyFile := other.KeyFile(t, t.TempDir())
	stranger := computeServer(t, api, InstanceMetadataConfig{ServiceAccountFile: keyFile})
	_, err = stranger.Attest(t.Context(), td, tok, nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, attest.ErrNodeRejected)

	// An API that answers 500.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "backend error", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	failing := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google), InstanceMetadata: &InstanceMetadataConfig{
		ServiceAccountFile: api.KeyFile(t, t.TempDir()), Endpoint: broken.URL, HTTPClient: api.Client()}})
	_, err = failing.Attest(t.Context(), td, tok, nil)
	require.ErrorContains(t, err, "500 Internal Server Error")
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
	// Nothing listens.
	gone := newTestServer(t, ServerConfig{Keys: gcemdtest.JWKS(t, google), InstanceMetadata: &InstanceMetadataConfig{
		ServiceAccountFile: api.KeyFile(t, t.TempDir()), Endpoint: "http://127.0.0.1:1/compute/v1", HTTPClient: api.Client()}})
	_, err = gone.Attest(t.Context(), td, tok, nil)
	require.ErrorContains(t, err, "Compute API")
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
}

func TestInstanceMetadataConfiguration(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.json")
	require.NoError(t, os.WriteFile(junk, []byte(`{"type":"authorized_user"}`), 0o600))
	for _, tc := range []struct {
		c   InstanceMetadataConfig
		err string
	}{
		{InstanceMetadataConfig{MaxMetadataValueSize: -1}, "must not be negative"},
		{InstanceMetadataConfig{AllowedLabelKeys: make([]string, maxListItems+1)}, "more than 4096"},
		{InstanceMetadataConfig{Endpoint: "ftp://x"}, "Compute API URL"},
		{InstanceMetadataConfig{ServiceAccountFile: filepath.Join(dir, "none.json")}, "service account file"},
		{InstanceMetadataConfig{ServiceAccountFile: junk}, "junk.json"},
	} {
		_, err := NewServer(ServerConfig{ProjectIDs: []string{testProject}, InstanceMetadata: &tc.c})
		require.ErrorContains(t, err, tc.err, "%+v", tc.c)
	}
	// Default credentials are looked for at the first lookup, not before.
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(dir, "none.json"))
	srv, err := NewServer(ServerConfig{ProjectIDs: []string{testProject}, Keys: gcemdtest.JWKS(t, gcemdtest.NewKey(t, 0)),
		InstanceMetadata: &InstanceMetadataConfig{Endpoint: "http://127.0.0.1:1/compute/v1/", HTTPClient: http.DefaultClient}})
	require.NoError(t, err)
	_, err = srv.Attest(t.Context(), td, []byte(gcemdtest.NewKey(t, 0).Sign(t, claims())), nil)
	require.ErrorContains(t, err, "credentials of the Compute API")
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
}
