package e2e_test

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// authorityOut is one authority as `authority ... -output json` prints it.
type authorityOut struct {
	Kind        string `json:"kind"`
	AuthorityID string `json:"authority_id"`
	ServerID    string `json:"server_id"`
	Local       bool   `json:"local"`
	State       string `json:"state"`
	Tainted     bool   `json:"tainted"`
	Revoked     bool   `json:"revoked"`
	Pending     bool   `json:"pending"`
}

func authorities(e *progtest.Env, kind string) []authorityOut {
	var doc struct {
		Authorities []authorityOut `json:"authorities"`
	}
	out := progtest.Must(e.T, e.ServerBin, "authority", kind, "show", "-output", "json", "-admin-socket", e.AdminSock)
	require.NoError(e.T, json.Unmarshal([]byte(out), &doc), out)
	return doc.Authorities
}

func authorityAction(e *progtest.Env, kind, verb string, args ...string) authorityOut {
	var a authorityOut
	out := progtest.Must(e.T, e.ServerBin, append([]string{"authority", kind, verb, "-output", "json", "-admin-socket", e.AdminSock}, args...)...)
	require.NoError(e.T, json.Unmarshal([]byte(out), &a), out)
	return a
}

// agentSVIDIssuer returns the SubjectKeyId, in hex, of the CA that signed
// the agent SVID saved in the agent's data directory: the ID of that
// authority.
func agentSVIDIssuer(e *progtest.Env) string {
	data, err := os.ReadFile(filepath.Join(e.Dir, "agent-data", "agent-svid.pem"))
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(cert.AuthorityKeyId)
}

// TestAuthorityAcrossServers drives the authority commands of two servers
// sharing a PostgreSQL database as an operator would: a CA of the second
// server is replaced on it (prepare, activate), then tainted and revoked
// through the first. The second server applies both, its agent renews its
// own SVID off the tainted CA, and the revoked CA leaves the bundle of both
// servers and of the agent, whose workload keeps being served.
func TestAuthorityAcrossServers(t *testing.T) {
	dsn := pgtest.New(t)
	a := progtest.NewEnv(t, "-datastore", dsn)
	b := progtest.NewEnv(t, "-datastore", dsn)
	a.StartServer()
	b.StartServer()
	b.StartAgent(b.Token())
	agentID := b.AgentID()
	b.Entry(agentID, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the workload's SVID", func() bool { out, code := b.Fetch(); return code == 0 && strings.Contains(out, "/web") })

	progtest.WaitFor(t, "A to list B's CA", func() bool { return len(authorities(a, "x509")) == 2 })
	var old string
	for _, x := range authorities(b, "x509") {
		if x.Local {
			old = x.AuthorityID
		}
	}
	require.NotEmpty(t, old)
	require.Equal(t, old, agentSVIDIssuer(b), "B's agent holds an SVID of B's CA")

	// Tainting B's active CA through A is refused with what to do instead.
	out, errOut, code := progtest.Run(t, nil, a.ServerBin, "authority", "x509", "taint", "-authorityID", old, "-admin-socket", a.AdminSock)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, errOut, "the active authority cannot be tainted; on its server, prepare and activate another")

	prepared := authorityAction(b, "x509", "prepare")
	assert.Equal(t, "prepared", prepared.State)
	activated := authorityAction(b, "x509", "activate", "-authorityID", prepared.AuthorityID)
	assert.Equal(t, "active", activated.State)

	tainted := authorityAction(a, "x509", "taint", "-authorityID", old)
	assert.True(t, tainted.Tainted)
	assert.False(t, tainted.Local)
	progtest.WaitFor(t, "B to apply the taint", func() bool {
		for _, x := range authorities(b, "x509") {
			if x.AuthorityID == old {
				return x.Tainted && !x.Pending
			}
		}
		return false
	})
	progtest.WaitFor(t, "B's agent to renew its SVID off the tainted CA", func() bool { return agentSVIDIssuer(b) == prepared.AuthorityID })

	revoked := authorityAction(a, "x509", "revoke", "-authorityID", old)
	assert.True(t, revoked.Revoked)
	progtest.WaitFor(t, "the revoked CA to leave both bundles and B's list", func() bool {
		for _, e := range []*progtest.Env{a, b} {
			bundle := progtest.Must(t, e.ServerBin, "bundle", "show", "-admin-socket", e.AdminSock)
			if strings.Count(bundle, "BEGIN CERTIFICATE") != 2 { // A's CA and B's new one
				return false
			}
		}
		return len(authorities(b, "x509")) == 2
	})
	progtest.WaitFor(t, "the workload served with the smaller bundle", func() bool {
		out, code := b.Fetch()
		return code == 0 && strings.Contains(out, "/web") && strings.Contains(out, "example.org, 2 X.509 authority(ies)")
	})
}
