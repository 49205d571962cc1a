package awsiid_test

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/imdstest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

const agentID = "spiffe://example.org/spiffekit/agent/aws_iid/123456789012/us-east-1/i-0123456789abcdef0"

// agentArgs are the arguments of a spiffe-agent attesting with aws_iid
// against the metadata service at endpoint, with its data and socket
// under the Env's directory, named name.
func agentArgs(e *progtest.Env, name, endpoint string) []string {
	return []string{"run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-aws-iid-endpoint", endpoint, "-aws-iid-timeout", "20s",
		"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}
}

// TestAttestWithIdentityDocument runs spiffe-server with aws_iid
// configured for one account and a test certificate for us-east-1, and
// spiffe-agent on an "instance" whose metadata service is local: the
// agent gets its aws_iid ID and selectors and serves an SVID registered
// under a node alias of the account. A second agent with the same
// document (a copy) is refused while the first one's record exists;
// documents of an account not allowed, or signed by another key, are
// refused.
func TestAttestWithIdentityDocument(t *testing.T) {
	aws := imdstest.NewSigner(t, 0, 1)
	doc := imdstest.Document("123456789012", "us-east-1", "i-0123456789abcdef0")
	imds := imdstest.Start(t, aws.Data(t, doc))

	dir := progtest.ShortTemp(t)
	certFile := filepath.Join(dir, "us-east-1.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: aws.Cert.Raw}), 0o600))
	config, err := json.Marshal(map[string]any{"node_attestors": map[string]any{"aws_iid": map[string]any{
		"account_allow_list":   []string{"123456789012"},
		"region_allow_list":    []string{"us-east-1"},
		"rsa2048_certificates": map[string]string{"us-east-1": certFile},
	}}})
	require.NoError(t, err)
	configFile := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(configFile, config, 0o600))
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", imds.URL)...)
	progtest.WaitFor(t, "the agent to attest", func() bool {
		out, _, code := progtest.Run(t, nil, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock)
		return code == 0 && strings.Contains(out, agentID)
	}, agent)
	assert.Zero(t, imds.Tokenless(), "the agent asked without a session token (IMDSv1)")
	out := progtest.Must(t, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock, "-spiffe-id", agentID)
	for _, sel := range []string{"aws_iid:account:123456789012", "aws_iid:region:us-east-1", "aws_iid:az:us-east-1a",
		"aws_iid:instance:id:i-0123456789abcdef0", "aws_iid:image:id:ami-0abcdef1234567890", "aws_iid:instance:type:m5.large"} {
		assert.Contains(t, out, sel)
	}

	// A node alias of the account's instances, and a workload under it.
	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/aws/account", "-selector", "aws_iid:account:123456789012")
	e.Entry("spiffe://example.org/aws/account", "spiffe://example.org/web", uid)
	progtest.WaitFor(t, "the SVID", func() bool {
		out, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "x509", "-socket", filepath.Join(e.Dir, "a.sock"))
		return code == 0 && strings.Contains(out, "spiffe://example.org/web")
	}, agent)

	refused := func(t *testing.T, name, endpoint, reason string) {
		t.Helper()
		before := len(srv.Output())
		_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, name, endpoint)...)
		assert.Equal(t, 1, code, stderr)
		assert.NotEmpty(t, stderr)
		progtest.WaitFor(t, "the server to log the refusal", func() bool {
			return strings.Contains(srv.Output()[before:], reason)
		})
	}
	t.Run("copied document", func(t *testing.T) {
		refused(t, "copy", imds.URL, "the agent is attested already, and its node attestor does not allow attesting again")
	})
	t.Run("account not allowed", func(t *testing.T) {
		other := imdstest.Document("210987654321", "us-east-1", "i-0123456789abcdef1")
		refused(t, "other", imdstest.Start(t, aws.Data(t, other)).URL, "account 210987654321 is not allowed")
	})
	t.Run("another key", func(t *testing.T) {
		forger := imdstest.NewSigner(t, 1, 1)
		victim := imdstest.Document("123456789012", "us-east-1", "i-0123456789abcdef2")
		refused(t, "forged", imdstest.Start(t, forger.Data(t, victim)).URL, "PKCS #7 signature of the document of instance i-0123456789abcdef2")
	})
}
