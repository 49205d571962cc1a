package e2e

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestFailFast: what cannot fix itself stops the programs at once, with
// the reason: a server configuration that cannot work, before any key,
// journal or database is made; an agent whose trust bundle does not
// verify its server, on its first attestation.
func TestFailFast(t *testing.T) {
	e := progtest.NewEnv(t)
	data := filepath.Join(e.Dir, "never")
	long := "/run/" + strings.Repeat("s", 110) + "/admin.sock"
	_, stderr, code := progtest.Run(t, nil, e.ServerBin, "run", "-trust-domain", "example.org", "-data-dir", data, "-admin-socket", long)
	assert.Equal(t, 2, code)
	assert.Equal(t, "spiffe-server run: -admin-socket: the path "+long+" is longer than the 107 bytes a unix socket allows\n"+
		`Run "spiffe-server run -h" for help.`+"\n", stderr)
	cfg := filepath.Join(e.Dir, "fed.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"federates_with": [{"trust_domain": "example.org", "url": "https://x/", "profile": "https_web"}]}`), 0o600))
	_, stderr, code = progtest.Run(t, nil, e.ServerBin, "run", "-trust-domain", "example.org", "-data-dir", data, "-config", cfg, "-admin-socket", e.AdminSock)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "federation relationship example.org: a trust domain's own bundle can never be overwritten through federation")
	assert.NoDirExists(t, data, "nothing made for a configuration that cannot work")

	e.StartServer()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	wrong := filepath.Join(e.Dir, "wrong.pem")
	require.NoError(t, os.WriteFile(wrong, pemutil.EncodeCertificates([]*x509.Certificate{testca.New(t, td).Root()}), 0o644))
	args := e.AgentArgs(e.Token())
	for i, a := range args {
		if a == e.BundleFile {
			args[i] = wrong
		}
	}
	_, stderr, code = progtest.Run(t, nil, e.AgentBin, args...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "spiffe-agent run: agent: the trust bundle does not verify the servers of example.org (is it their trust domain's bundle?): nodeapi: verifying the server: ")
	assert.NotContains(t, stderr, "retrying")
}
