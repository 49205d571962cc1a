package gcpiit_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/gcemdtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

const agentID = "spiffe://example.org/spiffekit/agent/gcp_iit/example-project/4567891234567891234"

// agentArgs are the arguments of a spiffe-agent attesting with gcp_iit
// against the metadata server at host, with its data and socket under
// the Env's directory, named name.
func agentArgs(e *progtest.Env, name, host string, extra ...string) []string {
	return append([]string{"run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-gcp-iit-host", host, "-gcp-iit-timeout", "20s",
		"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}, extra...)
}

// TestAttestWithIdentityToken runs spiffe-server with gcp_iit configured
// for one project, Google's keys at a local URL and the Compute API lookup
// against a local stand-in, and spiffe-agent on an "instance" whose
// metadata server is local: the agent gets its gcp_iit ID and selectors
// (the token's and the instance's) and serves an SVID registered under a
// node alias of the project. A second agent of the same instance (a token
// taken from it) is refused while the first one's record exists; tokens of
// a project not allowed, signed by another key, of an instance the API
// does not have, or for another audience are refused.
func TestAttestWithIdentityToken(t *testing.T) {
	google := gcemdtest.NewKey(t, 0)
	keys := gcemdtest.StartKeys(t, google)
	inst := gcemdtest.TestInstance()
	md := gcemdtest.Start(t, google, inst)

	api := gcemdtest.StartCompute(t)
	api.Add(t, inst, gcemdtest.ComputeInstance{Tags: []string{"web"}, Labels: map[string]string{"env": "prod", "owner": "x"},
		Metadata: map[string]string{"role": "frontend"}}, "")

	dir := progtest.ShortTemp(t)
	configFile := progtest.WriteConfig(t, dir, map[string]any{"node_attestors": map[string]any{"gcp_iit": map[string]any{
		"projectid_allow_list":  []string{"example-project"},
		"keys_url":              keys.JWKSURL(),
		"use_instance_metadata": true,
		"service_account_file":  api.KeyFile(t, dir),
		"compute_api_url":       api.Endpoint(),
		"allowed_label_keys":    []string{"env"},
		"allowed_metadata_keys": []string{"role"},
	}}})
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", md.Host())...)
	out := e.WaitAttested(agentID, agent)
	assert.Zero(t, md.Flavorless(), "the agent asked without Metadata-Flavor: Google")
	assert.Equal(t, "spire-gcp-node-attestor", md.LastAudience())
	assert.Positive(t, keys.Fetches(), "the server fetched Google's keys")
	for _, sel := range []string{"gcp_iit:project-id:example-project", "gcp_iit:zone:us-central1-a", "gcp_iit:instance-name:node-1",
		"gcp_iit:instance-id:4567891234567891234", "gcp_iit:project-number:123456789012",
		"gcp_iit:sa:node@example-project.iam.gserviceaccount.com", "gcp_iit:tag:web", "gcp_iit:label:env:prod", "gcp_iit:metadata:role:frontend"} {
		assert.Contains(t, out, sel)
	}
	assert.NotContains(t, out, "owner", "a label whose key is not allowed")
	assert.Positive(t, api.Gets(), "the server read the instance through the Compute API")

	// A node alias of the project's instances, and a workload under it.
	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/gcp/project", "-selector", "gcp_iit:project-id:example-project")
	e.Entry("spiffe://example.org/gcp/project", "spiffe://example.org/web", uid)
	e.WaitSVID(filepath.Join(e.Dir, "a.sock"), "spiffe://example.org/web", agent)

	refused := func(t *testing.T, name, host, reason string, extra ...string) {
		t.Helper()
		before := len(srv.Output())
		_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, name, host, extra...)...)
		assert.Equal(t, 1, code, stderr)
		assert.NotEmpty(t, stderr)
		progtest.WaitFor(t, "the server to log the refusal", func() bool {
			return strings.Contains(srv.Output()[before:], reason)
		})
	}
	t.Run("token of an attested instance", func(t *testing.T) {
		refused(t, "copy", md.Host(), "the agent is attested already, and its node attestor does not allow attesting again")
	})
	t.Run("project not allowed", func(t *testing.T) {
		other := inst
		other.ProjectID, other.InstanceID = "attacker-project", "1111111111111111111"
		refused(t, "other", gcemdtest.Start(t, google, other).Host(), "project attacker-project is not allowed")
	})
	t.Run("another key", func(t *testing.T) {
		victim := inst
		victim.InstanceID = "2222222222222222222"
		forger := gcemdtest.NewKey(t, 1)
		refused(t, "forged", gcemdtest.Start(t, forger, victim).Host(), "identity token signed by an unknown key ID")
	})
	t.Run("instance gone", func(t *testing.T) {
		gone := inst
		gone.InstanceName, gone.InstanceID = "node-2", "4444444444444444444"
		refused(t, "gone", gcemdtest.Start(t, google, gone).Host(), "the Compute API has no such instance node-2")
	})
	t.Run("another audience", func(t *testing.T) {
		victim := inst
		victim.InstanceID = "3333333333333333333"
		refused(t, "audience", gcemdtest.Start(t, google, victim).Host(), `audience \"https://other.example\" is not \"spire-gcp-node-attestor\"`,
			"-gcp-iit-audience", "https://other.example")
	})
}
