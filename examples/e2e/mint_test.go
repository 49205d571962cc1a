package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// TestMint mints SVIDs with the real spiffe-server: the X509-SVID verifies
// against the bundle, the JWT-SVID names its audience, and the server's
// log records both mints without the key or the token.
func TestMint(t *testing.T) {
	e := progtest.NewEnv(t)
	server := e.StartServer()
	dir := filepath.Join(e.Dir, "minted")
	progtest.Must(t, e.ServerBin, "x509", "mint", "-admin-socket", e.AdminSock, "-spiffeID", "spiffe://example.org/db",
		"-dns", "db.internal", "-ttl", "30m", "-write", dir)
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "key.pem"))
	require.NoError(t, err)
	roots, err := os.ReadFile(e.BundleFile)
	require.NoError(t, err)
	certs, err := pemutil.ParseCertificates(roots)
	require.NoError(t, err)
	_, _, err = x509svid.Verify(svid.Certificates, x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("example.org"), certs))
	require.NoError(t, err)
	assert.Equal(t, []string{"db.internal"}, svid.Certificates[0].DNSNames)
	written, err := os.ReadFile(filepath.Join(dir, "bundle.pem"))
	require.NoError(t, err)
	assert.Equal(t, string(roots), string(written))

	var minted struct {
		Token string `json:"token"`
	}
	out := progtest.Must(t, e.ServerBin, "jwt", "mint", "-admin-socket", e.AdminSock, "-spiffeID", "spiffe://example.org/batch",
		"-audience", "db", "-output", "json")
	require.NoError(t, json.Unmarshal([]byte(out), &minted))
	require.NotEmpty(t, minted.Token)

	_, stderr, code := progtest.Run(t, nil, e.ServerBin, "x509", "mint", "-admin-socket", e.AdminSock, "-spiffeID", "spiffe://example.org/spiffekit/server")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "is reserved for the server and its agents")

	progtest.WaitFor(t, "the mints in the log", func() bool {
		return strings.Contains(server.Output(), `msg="admin: minted a JWT-SVID"`)
	}, server)
	logs := server.Output()
	assert.Contains(t, logs, `msg="admin: minted an X509-SVID" component=admin spiffe_id=spiffe://example.org/db dns_names=[db.internal] serial=`+svid.Certificates[0].SerialNumber.Text(16))
	assert.NotContains(t, logs, minted.Token)
	assert.NotContains(t, logs, "PRIVATE KEY")
}
