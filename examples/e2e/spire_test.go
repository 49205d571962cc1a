package e2e_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// TestSPIREStyleOperator drives the programs as a SPIRE operator's scripts
// do: SPIRE's flag names and values, the sockets from the environment, a
// SPIRE entry file, -output json read by a script, and the exit codes.
func TestSPIREStyleOperator(t *testing.T) {
	e := progtest.NewEnv(t)
	srv := e.StartServer()
	server := func(args ...string) (string, string, int) {
		t.Helper()
		return progtest.Run(t, nil, e.ServerBin, args...)
	}
	must := func(args ...string) string {
		t.Helper()
		return progtest.Must(t, e.ServerBin, args...)
	}

	// The admin socket from the environment, as SPIRE's -socketPath would
	// give it.
	t.Setenv("SPIFFE_SERVER_ADMIN_SOCKET", e.AdminSock)
	token := strings.TrimSpace(must("token", "generate", "-spiffeID", "spiffe://example.org/node1", "-ttl", "600"))
	agent := e.StartAgent(token)
	agentID := e.AgentID()
	assert.Contains(t, must("agent", "list", "-socketPath", e.AdminSock), agentID)

	// A SPIRE entry file, parented by the node alias of the token.
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	file := filepath.Join(e.Dir, "entries.json")
	require.NoError(t, os.WriteFile(file, []byte(`{
  "entries": [
    {
      "selectors": [{"type": "unix", "value": "uid:`+uid+`"}],
      "spiffe_id": "spiffe://example.org/web",
      "parent_id": "spiffe://example.org/node1",
      "x509_svid_ttl": 3600,
      "jwt_svid_ttl": 300,
      "dns_names": ["web.example.org"],
      "admin": false,
      "downstream": false,
      "revision_number": 0
    },
    {
      "selectors": [{"type": "unix", "value": "gid:`+gid+`"}],
      "spiffe_id": "spiffe://example.org/db",
      "parent_id": "spiffe://example.org/node1",
      "ttl": 1800
    }
  ]
}`), 0o644))
	created := must("entry", "create", "-data", file)
	assert.Equal(t, 2, strings.Count(created, " spiffe://example.org/"), created)

	// A script reads the JSON output.
	var shown struct {
		Entries []struct {
			EntryID     string  `json:"entry_id"`
			SPIFFEID    string  `json:"spiffe_id"`
			X509SVIDTTL float64 `json:"x509_svid_ttl"`
		} `json:"entries"`
	}
	require.NoError(t, json.Unmarshal([]byte(must("entry", "show", "-spiffeID", "spiffe://example.org/db", "-output", "json")), &shown))
	require.Len(t, shown.Entries, 1)
	assert.Equal(t, 1800.0, shown.Entries[0].X509SVIDTTL)
	dbID := shown.Entries[0].EntryID

	// One more entry by flags, SPIRE's spellings, then changed.
	var one struct {
		EntryID    string  `json:"entry_id"`
		JWTSVIDTTL float64 `json:"jwt_svid_ttl"`
	}
	require.NoError(t, json.Unmarshal([]byte(must("entry", "create", "-parentID", agentID, "-spiffeID", "spiffe://example.org/cache",
		"-selector", "unix:uid:"+uid, "-x509SVIDTTL", "600", "-jwtSVIDTTL", "120", "-federatesWith", "spiffe://partner.test",
		"-dns", "cache.example.org", "-output", "json")), &one))
	assert.Equal(t, 120.0, one.JWTSVIDTTL)
	assert.Contains(t, must("entry", "update", "-entryID", one.EntryID, "-jwtSVIDTTL", "60", "-hint", "cache"), "JWT-SVID TTL:   1m0s")
	assert.Contains(t, must("entry", "show", "-selector", "unix:uid:"+uid, "-matchSelectorsOn", "exact"), "Found 2 entries")
	assert.Contains(t, must("entry", "update", "-entryID", one.EntryID, "-dns", ""), "Revision:       3", "an empty -dns clears the names")
	assert.Contains(t, must("entry", "update", "-entryID", one.EntryID), "Revision:       3", "an empty update writes nothing")

	// A node entry by the agent's own selectors (SPIRE's -node), and a
	// workload parented by it, with an ID of the operator's choosing.
	var shownAgent struct {
		Selectors []struct{ Type, Value string } `json:"selectors"`
	}
	require.NoError(t, json.Unmarshal([]byte(must("agent", "show", "-spiffeID", agentID, "-output", "json")), &shownAgent))
	require.NotEmpty(t, shownAgent.Selectors)
	nodeSel := shownAgent.Selectors[0].Type + ":" + shownAgent.Selectors[0].Value
	assert.Contains(t, must("entry", "create", "-node", "-spiffeID", "spiffe://example.org/nodes/all", "-selector", nodeSel),
		"Parent ID:      spiffe://example.org/spiffekit/server")
	assert.Contains(t, must("entry", "create", "-entryID", "6e1e7c3a-42a7-4c8e-9d0b-1f2a3b4c5d6e", "-parentID", "spiffe://example.org/nodes/all",
		"-spiffeID", "spiffe://example.org/batch", "-selector", "unix:uid:"+uid), "Entry ID:       6e1e7c3a42a74c8e9d0b1f2a3b4c5d6e")
	assert.Equal(t, `{"count":6}`+"\n", must("entry", "count", "-output", "json"), "the token's node alias, web, db, cache, the node entry and batch")
	assert.Equal(t, "1 attested agent\n", must("agent", "count"))

	// The workload, through the agent, with SPIRE's agent flags and the
	// standard variable.
	progtest.WaitFor(t, "the workload's SVIDs", func() bool {
		out, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "-socketPath", e.APISock)
		return code == 0 && strings.Contains(out, "spiffe://example.org/web") && strings.Contains(out, "spiffe://example.org/db") &&
			strings.Contains(out, "spiffe://example.org/cache") && strings.Contains(out, "spiffe://example.org/batch")
	}, srv, agent)
	t.Setenv("SPIFFE_ENDPOINT_SOCKET", "unix://"+e.APISock)
	jwt := progtest.Must(t, e.AgentBin, "api", "fetch", "jwt", "-audience", "db,cache", "-spiffeID", "spiffe://example.org/web")
	assert.True(t, strings.HasPrefix(jwt, "spiffe://example.org/web\ney"), jwt)
	progtest.Must(t, e.AgentBin, "healthcheck", "-shallow")
	dir := filepath.Join(e.Dir, "svids")
	assert.Empty(t, progtest.Must(t, e.AgentBin, "api", "fetch", "x509", "-write", dir, "-silent"))
	assert.True(t, progtest.Exists(filepath.Join(dir, "svid.0.pem")))

	// Exit codes: a failed operation 1, bad usage 2, help 0.
	_, stderr, code := server("entry", "show", "-entryID", "0123456789abcdef0123456789abcdef")
	assert.Equal(t, 1, code, stderr)
	assert.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
	_, stderr, code = server("entry", "create", "-spiffeID", "spiffe://example.org/x", "-admin")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "-admin: an entry grants an identity")
	for _, args := range [][]string{{"entry", "create", "-h"}, {"entry", "-h"}, {"-h"}} {
		out, stderr, code := server(args...)
		assert.Equal(t, 0, code, args)
		assert.Contains(t, out, "Usage: spiffe-server")
		assert.Empty(t, stderr)
	}
	for _, args := range [][]string{{"api", "-h"}, {"api", "fetch", "jwt", "-h"}, {"healthcheck", "-h"}} {
		out, stderr, code := progtest.Run(t, nil, e.AgentBin, args...)
		assert.Equal(t, 0, code, args)
		assert.Contains(t, out, "Usage: spiffe-agent")
		assert.Empty(t, stderr)
	}

	assert.Equal(t, "Deleted entry "+dbID+"\n", must("entry", "delete", "-entryID", dbID))
	progtest.WaitFor(t, "the deleted entry to leave the workload", func() bool {
		out, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch")
		return code == 0 && !strings.Contains(out, "spiffe://example.org/db")
	}, srv, agent)
}
