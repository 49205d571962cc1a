package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// nestedLevel starts a server (nested under upstream when not nil, through
// upstream_authority.spire and upstream's agent) and its agent, and
// returns the Env and the agent's SPIFFE ID.
func nestedLevel(t *testing.T, upstream *progtest.Env) (*progtest.Env, string) {
	t.Helper()
	var args []string
	if upstream != nil {
		config := filepath.Join(progtest.ShortTemp(t), "server.json")
		port := upstream.Bind[strings.LastIndex(upstream.Bind, ":")+1:]
		require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `{"upstream_authority": {"spire": {"server_address": "127.0.0.1",
			"server_port": %q, "workload_api_socket": %q}}}`, port, upstream.APISock), 0o600))
		args = []string{"-config", config}
	}
	e := progtest.NewEnv(t, args...)
	e.StartServer()
	e.StartAgent(e.Token())
	return e, e.AgentID()
}

// TestNestedPrograms runs three spiffe-servers, each with its agent: a
// root, a regional server nested under it and an edge server nested under
// the regional one, each a workload of the agent above it with a
// downstream entry. A workload at the edge and one at the root verify each
// other's X509-SVID and JWT-SVID with what their own agent gives them.
func TestNestedPrograms(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	root, rootAgent := nestedLevel(t, nil)
	serverSel := "unix:path:" + root.ServerBin
	workloadSel := "unix:path:" + exe
	root.Entry(rootAgent, "spiffe://example.org/regional", serverSel, "-downstream")
	regional, regionalAgent := nestedLevel(t, root)
	regional.Entry(regionalAgent, "spiffe://example.org/edge", serverSel, "-downstream")
	edge, edgeAgent := nestedLevel(t, regional)
	root.Entry(rootAgent, "spiffe://example.org/at-root", workloadSel)
	edge.Entry(edgeAgent, "spiffe://example.org/at-edge", workloadSel)

	fetch := func(e *progtest.Env) *workloadapi.X509Context {
		var x *workloadapi.X509Context
		progtest.WaitFor(t, "a workload's X509-SVID", func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			got, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+e.APISock))
			x = got
			return err == nil && len(got.SVIDs) > 0
		})
		return x
	}
	atRoot, atEdge := fetch(root), fetch(edge)
	require.Len(t, atEdge.SVIDs[0].Certificates, 3, "the SVID, the edge's CA, the regional CA")
	id, _, err := x509svid.Verify(atEdge.SVIDs[0].Certificates, atRoot.Bundles)
	require.NoError(t, err, "the root's workload verifies the edge's")
	assert.Equal(t, "spiffe://example.org/at-edge", id.String())
	id, _, err = x509svid.Verify(atRoot.SVIDs[0].Certificates, atEdge.Bundles)
	require.NoError(t, err, "the edge's workload verifies the root's")
	assert.Equal(t, "spiffe://example.org/at-root", id.String())

	token := func(e *progtest.Env, id string) string {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		s, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db", Subject: spiffeid.RequireFromString(id)},
			workloadapi.WithAddr("unix://"+e.APISock))
		require.NoError(t, err)
		return s.Marshal()
	}
	validates := func(e *progtest.Env, tok string) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			_, err := workloadapi.ValidateJWTSVID(ctx, tok, "db", workloadapi.WithAddr("unix://"+e.APISock))
			return err == nil
		}
	}
	progtest.WaitFor(t, "the edge's JWT-SVID to validate at the root", validates(root, token(edge, "spiffe://example.org/at-edge")))
	progtest.WaitFor(t, "the root's JWT-SVID to validate at the edge", validates(edge, token(root, "spiffe://example.org/at-root")))
}
