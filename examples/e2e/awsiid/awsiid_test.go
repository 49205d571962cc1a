package awsiid_test

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/awstest"
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
	configFile := progtest.WriteConfig(t, dir, map[string]any{"node_attestors": map[string]any{"aws_iid": map[string]any{
		"account_allow_list":   []string{"123456789012"},
		"region_allow_list":    []string{"us-east-1"},
		"rsa2048_certificates": map[string]string{"us-east-1": certFile},
	}}})
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", imds.URL)...)
	out := e.WaitAttested(agentID, agent)
	assert.Zero(t, imds.Tokenless(), "the agent asked without a session token (IMDSv1)")
	for _, sel := range []string{"aws_iid:account:123456789012", "aws_iid:region:us-east-1", "aws_iid:az:us-east-1a",
		"aws_iid:instance:id:i-0123456789abcdef0", "aws_iid:image:id:ami-0abcdef1234567890", "aws_iid:instance:type:m5.large"} {
		assert.Contains(t, out, sel)
	}

	// A node alias of the account's instances, and a workload under it.
	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/aws/account", "-selector", "aws_iid:account:123456789012")
	e.Entry("spiffe://example.org/aws/account", "spiffe://example.org/web", uid)
	e.WaitSVID(filepath.Join(e.Dir, "a.sock"), "spiffe://example.org/web", agent)

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

// TestAttestWithEC2Lookup runs spiffe-server with aws_iid's EC2 and IAM
// lookups on (SPIRE's access_key_id and secret_access_key, the endpoints
// pointed at a local stand-in speaking the APIs' Query protocol): the
// agent gets the selectors of its instance's tags, security groups and
// IAM role, an agent ID of agent_path_template made from a tag, and an
// SVID under a node alias of a tag; an instance EC2 does not know, one
// whose root volume was replaced and one without the template's tag are
// refused.
func TestAttestWithEC2Lookup(t *testing.T) {
	const account, profile, role = "123456789012", "arn:aws:iam::123456789012:instance-profile/web", "arn:aws:iam::123456789012:role/web"
	aws := imdstest.NewSigner(t, 0, 1)
	api := awstest.Start(t)
	api.AddInstance(awstest.Instance{ID: "i-0123456789abcdef0", AccountID: account, Tags: [][2]string{{"env", "prod"}},
		SecurityGroups: [][2]string{{"sg-01234567", "web"}}, InstanceProfileARN: profile})
	api.AddInstanceProfile(profile, role)
	launch := time.Now().Add(-time.Hour)
	api.AddInstance(awstest.Instance{ID: "i-0123456789abcdef2", AccountID: account, LaunchTime: launch, RootAttachTime: launch.Add(10 * time.Minute)})

	dir := progtest.ShortTemp(t)
	certFile := filepath.Join(dir, "us-east-1.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: aws.Cert.Raw}), 0o600))
	key := api.Key()
	configFile := progtest.WriteConfig(t, dir, map[string]any{"node_attestors": map[string]any{"aws_iid": map[string]any{
		"account_allow_list":   []string{account},
		"rsa2048_certificates": map[string]string{"us-east-1": certFile},
		"access_key_id":        key.AccessKeyID,
		"secret_access_key":    key.SecretAccessKey,
		"ec2_endpoint":         api.URL,
		"iam_endpoint":         api.URL,
		"agent_path_template":  "/{{ .PluginName }}/{{ .Tags.env }}/{{ .InstanceID }}",
	}}})
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	imds := imdstest.Start(t, aws.Data(t, imdstest.Document(account, "us-east-1", "i-0123456789abcdef0")))
	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", imds.URL)...)
	out := e.WaitAttested("spiffe://example.org/spiffekit/agent/aws_iid/prod/i-0123456789abcdef0", agent) // the template's
	for _, sel := range []string{"aws_iid:account:123456789012", "aws_iid:instance:id:i-0123456789abcdef0",
		"aws_iid:tag:env:prod", "aws_iid:sg:id:sg-01234567", "aws_iid:sg:name:web", "aws_iid:iamrole:" + role} {
		assert.Contains(t, out, sel)
	}
	require.Len(t, api.CallsOf("DescribeInstances"), 1)
	require.Len(t, api.CallsOf("GetInstanceProfile"), 1)

	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/aws/prod", "-selector", "aws_iid:tag:env:prod")
	e.Entry("spiffe://example.org/aws/prod", "spiffe://example.org/web", uid)
	e.WaitSVID(filepath.Join(e.Dir, "a.sock"), "spiffe://example.org/web", agent)

	refused := func(t *testing.T, name, instance, reason string) {
		t.Helper()
		before := len(srv.Output())
		imds := imdstest.Start(t, aws.Data(t, imdstest.Document(account, "us-east-1", instance)))
		_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, name, imds.URL)...)
		assert.Equal(t, 1, code, stderr)
		progtest.WaitFor(t, "the server to log the refusal", func() bool {
			return strings.Contains(srv.Output()[before:], reason)
		})
	}
	t.Run("unknown instance", func(t *testing.T) {
		refused(t, "unknown", "i-0123456789abcdef1", "EC2 has no instance i-0123456789abcdef1")
	})
	t.Run("replaced root volume", func(t *testing.T) {
		refused(t, "swapped", "i-0123456789abcdef2", "it was replaced after launch")
	})
	t.Run("no tag for the agent path", func(t *testing.T) {
		api.AddInstance(awstest.Instance{ID: "i-0123456789abcdef3", AccountID: account})
		refused(t, "untagged", "i-0123456789abcdef3", `map has no entry for key \"env\"`)
	})
}
