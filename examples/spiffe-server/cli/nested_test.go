//go:build !windows

package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestRunNestedUpstream starts the server with upstream_authority.spire
// (SPIRE's keys) under a root server, as a workload of an agent attested
// to the root with a downstream entry: its CA is signed by the root, its
// bundle is the root's, and an SVID it mints chains to the root through
// its own CA.
func TestRunNestedUpstream(t *testing.T) {
	root := nodetest.StartServer(t, issuing.Config{})
	agent := nodetest.StartAgent(t, root.AgentConfig(t))
	_, err := root.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(nodetest.TrustDomain, "/regional"), ParentID: agent.ID(),
		Selectors: []attest.Selector{nodetest.UID()}, Downstream: true,
	})
	require.NoError(t, err)

	dir, err := os.MkdirTemp("", "nested")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	host, port, err := net.SplitHostPort(root.Addr().String())
	require.NoError(t, err)
	config := writeJSON(t, dir, fmt.Sprintf(`{"upstream_authority": {"spire": {"server_address": %q, "server_port": %q,
		"workload_api_socket": %q}}}`, host, port, strings.TrimPrefix(agent.Addr, "unix://")))
	sock := filepath.Join(dir, "admin.sock")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-config", config, "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"),
			"-bind", "127.0.0.1:0", "-admin-socket", sock}, io.Discard, &stderr)
	}()
	waitReady(t, &stderr, done)
	assert.Contains(t, stderr.String(), "spiffe://example.org/regional")

	rootCA := root.Bundle().X509Authorities()
	require.Len(t, rootCA, 1)
	mintChained(t, ctx, sock, rootCA[0], 2) // the leaf and the server's CA, signed by the root server
	stopRuns(t, cancel, &stderr, done)
}

// TestNestedSection reads upstream_authority.spire with SPIRE's keys, and
// refuses what cannot work before anything is created.
func TestNestedSection(t *testing.T) {
	dir := t.TempDir()
	parse := func(text string) (runConfig, error) {
		t.Helper()
		var rc runConfig
		var stdout, stderr bytes.Buffer
		_, ok := newRunCommand(&rc).Parse([]string{"-config", writeJSON(t, dir, text)}, &stdout, &stderr)
		if !ok {
			return rc, fmt.Errorf("%s", stderr.String())
		}
		if err := upstreamKeys(&rc); err != nil {
			return rc, err
		}
		return rc, checkNested(&rc)
	}
	for _, port := range []string{`"8081"`, `8081`} {
		rc, err := parse(`{"upstream_authority": {"spire": {"server_address": "upstream", "server_port": ` + port + `, "workload_api_socket": "/run/agent.sock"}}}`)
		require.NoError(t, err)
		assert.Equal(t, "8081", string(rc.Nested.ServerPort))
	}
	for text, msg := range map[string]string{
		`{"upstream_authority": {"spire": {"server_port": "1", "workload_api_socket": "/s"}}}`:                            "server_address is required",
		`{"upstream_authority": {"spire": {"server_address": "h", "server_port": "1"}}}`:                                  "workload_api_socket is required",
		`{"upstream_authority": {"spire": {"server_address": "h", "workload_api_socket": "/s"}}}`:                         `server_port "" is not a port number`,
		`{"upstream_authority": {"spire": {"server_address": "h", "server_port": "70000", "workload_api_socket": "/s"}}}`: "is not a port number",
		`{"upstream_authority": {"spire": {"server_address": "h", "server_port": "1", "workload_api_socket": "/s"},
			"disk": {"cert_file_path": "/c", "key_file_path": "/k"}}}`: "one upstream authority only",
		`{"upstream_authority": {"spire": {"server_address": "h", "server_port": true}}}`: "server_port: want a port number",
	} {
		_, err := parse(text)
		require.ErrorContains(t, err, msg, text)
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"))
		assert.Equal(t, ExitUsage, code, text)
		assert.Contains(t, stderr, msg, text)
		_, err = os.Stat(filepath.Join(dir, "data"))
		assert.ErrorIs(t, err, os.ErrNotExist, "nothing is created")
	}
	assert.Equal(t, "unix:///run/a.sock", workloadAPIAddr("/run/a.sock"))
	assert.Equal(t, "tcp://127.0.0.1:1", workloadAPIAddr("tcp://127.0.0.1:1"))
}
