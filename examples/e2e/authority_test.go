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

func (e *env) authorities(kind string) []authorityOut {
	var doc struct {
		Authorities []authorityOut `json:"authorities"`
	}
	out := must(e.t, e.serverBin, "authority", kind, "show", "-output", "json", "-admin-socket", e.adminSock)
	require.NoError(e.t, json.Unmarshal([]byte(out), &doc), out)
	return doc.Authorities
}

func (e *env) authorityAction(kind, verb string, args ...string) authorityOut {
	var a authorityOut
	out := must(e.t, e.serverBin, append([]string{"authority", kind, verb, "-output", "json", "-admin-socket", e.adminSock}, args...)...)
	require.NoError(e.t, json.Unmarshal([]byte(out), &a), out)
	return a
}

// agentSVIDIssuer returns the SubjectKeyId, in hex, of the CA that signed
// the agent SVID saved in the agent's data directory: the ID of that
// authority.
func (e *env) agentSVIDIssuer() string {
	data, err := os.ReadFile(filepath.Join(e.dir, "agent-data", "agent-svid.pem"))
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
	a := newEnv(t, "-datastore", dsn)
	b := newEnv(t, "-datastore", dsn)
	a.startServer()
	b.startServer()
	b.startAgent(b.token())
	agentID := b.agentID()
	b.entry(agentID, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	waitFor(t, "the workload's SVID", func() bool { out, code := b.fetch(); return code == 0 && strings.Contains(out, "/web") })

	waitFor(t, "A to list B's CA", func() bool { return len(a.authorities("x509")) == 2 })
	var old string
	for _, x := range b.authorities("x509") {
		if x.Local {
			old = x.AuthorityID
		}
	}
	require.NotEmpty(t, old)
	require.Equal(t, old, b.agentSVIDIssuer(), "B's agent holds an SVID of B's CA")

	// Tainting B's active CA through A is refused with what to do instead.
	out, errOut, code := run(t, nil, a.serverBin, "authority", "x509", "taint", "-authorityID", old, "-admin-socket", a.adminSock)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, errOut, "the active authority cannot be tainted; on its server, prepare and activate another")

	prepared := b.authorityAction("x509", "prepare")
	assert.Equal(t, "prepared", prepared.State)
	activated := b.authorityAction("x509", "activate", "-authorityID", prepared.AuthorityID)
	assert.Equal(t, "active", activated.State)

	tainted := a.authorityAction("x509", "taint", "-authorityID", old)
	assert.True(t, tainted.Tainted)
	assert.False(t, tainted.Local)
	waitFor(t, "B to apply the taint", func() bool {
		for _, x := range b.authorities("x509") {
			if x.AuthorityID == old {
				return x.Tainted && !x.Pending
			}
		}
		return false
	})
	waitFor(t, "B's agent to renew its SVID off the tainted CA", func() bool { return b.agentSVIDIssuer() == prepared.AuthorityID })

	revoked := a.authorityAction("x509", "revoke", "-authorityID", old)
	assert.True(t, revoked.Revoked)
	waitFor(t, "the revoked CA to leave both bundles and B's list", func() bool {
		for _, e := range []*env{a, b} {
			bundle := must(t, e.serverBin, "bundle", "show", "-admin-socket", e.adminSock)
			if strings.Count(bundle, "BEGIN CERTIFICATE") != 2 { // A's CA and B's new one
				return false
			}
		}
		return len(b.authorities("x509")) == 2
	})
	waitFor(t, "the workload served with the smaller bundle", func() bool {
		out, code := b.fetch()
		return code == 0 && strings.Contains(out, "/web") && strings.Contains(out, "example.org, 2 X.509 authority(ies)")
	})
}
