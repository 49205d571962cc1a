package tpm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

var agentIDPattern = regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/tpm/[0-9a-f]{64}`)

// agentArgs are the arguments of a spiffe-agent attesting with the TPM at
// socket, with its data and Workload API socket under dir/name.
func agentArgs(e *progtest.Env, name, socket string) []string {
	return []string{"run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-tpm-device", socket,
		"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}
}

// TestAttestWithTPM runs spiffe-server with the tpm attestor trusting a
// local EK CA and asking for PCR 0, and spiffe-agent attesting with a
// software TPM of that CA: the agent gets its tpm ID and selectors and
// serves an SVID to a workload registered under it; after losing its data
// it attests again under the same ID. A TPM of another CA is refused.
func TestAttestWithTPM(t *testing.T) {
	trusted, untrusted := swtpmtest.NewCA(t), swtpmtest.NewCA(t)
	tpms := swtpmtest.NewN(t, trusted, untrusted)
	dir := progtest.ShortTemp(t)
	config := filepath.Join(dir, "server.json")
	b, err := json.Marshal(map[string]any{"node_attestors": map[string]any{"tpm": map[string]any{
		"ca_bundle_path": trusted.BundleFile(t), "pcrs": []int{0, 7}}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(config, b, 0o600))
	e := progtest.NewEnv(t, "-config", config)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", tpms[0].Socket)...)
	progtest.WaitFor(t, "the agent to attest", func() bool { return strings.Contains(agent.Output(), "agent started") }, agent)
	agentID := agentIDPattern.FindString(agent.Output())
	require.NotEmpty(t, agentID, agent.Output())
	ekHash := agentID[strings.LastIndex(agentID, "/")+1:]
	out := progtest.Must(t, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock, "-spiffe-id", agentID)
	zero := strings.Repeat("0", 64)
	for _, sel := range []string{"tpm:ek_hash:" + ekHash, "tpm:ek_cert:trusted:true", "tpm:issuer:cn:swtpm-localca",
		"tpm:manufacturer:id:00001014", "tpm:pcr:sha256:0:" + zero, "tpm:pcr:sha256:7:" + zero} {
		assert.Contains(t, out, sel)
	}

	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	e.Entry(agentID, "spiffe://example.org/web", uid)
	// A node alias of every TPM of the trusted manufacturer.
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/tpm-nodes", "-selector", "tpm:issuer:cn:swtpm-localca")
	e.Entry("spiffe://example.org/tpm-nodes", "spiffe://example.org/fleet", uid)
	apiSock := filepath.Join(e.Dir, "a.sock")
	progtest.WaitFor(t, "both SVIDs", func() bool {
		out, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "x509", "-socket", apiSock)
		return code == 0 && strings.Contains(out, "spiffe://example.org/web") && strings.Contains(out, "spiffe://example.org/fleet")
	}, agent)

	// The agent restarts without its data: the same TPM attests again,
	// under the same ID.
	agent.Stop(t, syscall.SIGKILL)
	require.NoError(t, os.RemoveAll(filepath.Join(e.Dir, "a-data")))
	agent = progtest.Start(t, e.AgentBin, agentArgs(e, "a", tpms[0].Socket)...)
	progtest.WaitFor(t, "the agent to attest again", func() bool { return strings.Contains(agent.Output(), "agent started") }, agent)
	assert.Contains(t, agent.Output(), agentID)

	// A TPM whose EK certificate another CA issued.
	before := len(srv.Output())
	_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, "b", tpms[1].Socket)...)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "refused")
	progtest.WaitFor(t, "the server to log the refusal", func() bool {
		return strings.Contains(srv.Output()[before:], "node attestation refused")
	}, srv)
	assert.Contains(t, srv.Output()[before:], "is not trusted")
}
