package k8spsat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

func TestNewClient(t *testing.T) {
	for _, tt := range []struct {
		name, cluster, err string
	}{
		{"no cluster", "", "no cluster name"},
		{"slash", "a/b", "only letters"},
		{"dot", ".", "not allowed"},
		{"dot dot", "..", "not allowed"},
		{"colon: it would split selectors", "a:b", "only letters"},
		{"too long", strings.Repeat("a", 254), "longer than 253"},
		{"non-ASCII", "clüster", "only letters"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(ClientConfig{Cluster: tt.cluster})
			require.ErrorContains(t, err, tt.err)
			assert.True(t, strings.HasPrefix(err.Error(), "k8spsat: "), err)
		})
	}
	c, err := NewClient(ClientConfig{Cluster: "prod-1.eu_west"})
	require.NoError(t, err)
	assert.Equal(t, DefaultTokenPath, c.tokenPath)
	assert.Equal(t, "k8s_psat", c.Type())
}

func TestPayloadHidesToken(t *testing.T) {
	p := Payload{Cluster: "c", Token: "secret-token"}
	for _, s := range []string{p.String(), fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p)} {
		assert.NotContains(t, s, "secret-token")
		assert.Contains(t, s, `"c"`)
	}
}

func TestClientPayload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	c, err := NewClient(ClientConfig{Cluster: "c1", TokenPath: path})
	require.NoError(t, err)

	_, err = c.Payload(t.Context())
	require.ErrorContains(t, err, "reading the service account token")

	// The kubelet rewrites the file as it rotates the token: each payload
	// carries what the file holds then.
	for _, token := range []string{"first.token.value", "second.token.value"} {
		require.NoError(t, os.WriteFile(path, []byte(token+"\n"), 0o600))
		b, err := c.Payload(t.Context())
		require.NoError(t, err)
		var p map[string]string
		require.NoError(t, json.Unmarshal(b, &p))
		assert.Equal(t, map[string]string{"cluster": "c1", "token": token}, p, "SPIRE's payload")
	}

	require.NoError(t, os.WriteFile(path, []byte(" \n"), 0o600))
	_, err = c.Payload(t.Context())
	require.ErrorContains(t, err, "is empty")

	secret := strings.Repeat("s", maxToken+1)
	require.NoError(t, os.WriteFile(path, []byte(secret), 0o600))
	_, err = c.Payload(t.Context())
	require.ErrorContains(t, err, "larger than")
	assert.NotContains(t, err.Error(), "sss", "an error never holds the token")

	// The largest token makes a payload the server takes.
	require.NoError(t, os.WriteFile(path, []byte(secret[1:]), 0o600))
	b, err := c.Payload(t.Context())
	require.NoError(t, err)
	assert.LessOrEqual(t, len(b), attest.MaxNodePayload)
	p, err := ParsePayload(b)
	require.NoError(t, err)
	assert.Equal(t, secret[1:], p.Token)

	// A directory is not a token.
	c, err = NewClient(ClientConfig{Cluster: "c1", TokenPath: dir})
	require.NoError(t, err)
	_, err = c.Payload(t.Context())
	require.Error(t, err)

	_, err = c.Respond(t.Context(), []byte("challenge"))
	require.ErrorContains(t, err, "k8s_psat attestation has none")
}

func TestParsePayload(t *testing.T) {
	for _, tt := range []struct {
		name, in, err string
	}{
		{"not JSON", "token", "malformed payload"},
		{"unknown field", `{"cluster":"c","token":"t","node":"n"}`, "malformed payload"},
		{"two objects", `{"cluster":"c","token":"t"}{}`, "data after"},
		{"no token", `{"cluster":"c"}`, "no token"},
		{"no cluster", `{"token":"t"}`, "no cluster name"},
		{"bad cluster", `{"cluster":"a/b","token":"t"}`, "only letters"},
		{"array", `[]`, "malformed payload"},
		{"too large", `{"cluster":"c","token":"` + strings.Repeat("t", attest.MaxNodePayload) + `"}`, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePayload([]byte(tt.in))
			require.ErrorContains(t, err, tt.err)
		})
	}
	p, err := ParsePayload([]byte(` {"token":"t","cluster":"c"} `))
	require.NoError(t, err)
	assert.Equal(t, Payload{Cluster: "c", Token: "t"}, p)
}
