package workloadsv1test_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/testing/workloadsv1test"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A file of version 1 is a header, a line per CA (each once), per
// federated bundle and per entry (with its SVID, naming its CAs by
// number), and an end line with the count and SHA-256 of the lines before
// it; the first files of the version had no dates in their SVIDs.
func TestWrite(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	agentID := spiffeid.RequireFromPath(td, "/agent")
	ca := testca.New(t, td)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var entries []registry.Entry
	var svids []issuer.SavedX509SVID
	for _, path := range []string{"/a", "/b"} {
		e := registry.Entry{ID: strings.Repeat(path[1:], 32), SPIFFEID: spiffeid.RequireFromPath(td, path), ParentID: agentID,
			Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}}, Revision: 1, CreatedAt: created, UpdatedAt: created,
			ExpiresAt: created.Add(time.Hour), FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.test")}}
		entries = append(entries, e)
		chain, _ := ca.NewLeaf(t, e.SPIFFEID)
		svids = append(svids, issuer.SavedX509SVID{EntryID: e.ID, Revision: 1, Certificates: [][]byte{chain[0].Raw, ca.Cert().Raw},
			PrivateKey: []byte("key"), NotBefore: chain[0].NotBefore, NotAfter: chain[0].NotAfter, MintedAt: created})
	}
	fed := spiffebundle.FromX509Bundle(testca.New(t, spiffeid.RequireTrustDomainFromString("other.test")).X509Bundle())

	for _, dates := range []bool{true, false} {
		var b bytes.Buffer
		workloadsv1test.Write(t, &b, td, agentID, entries, svids, []*spiffebundle.Bundle{fed}, dates)
		lines := strings.SplitAfter(b.String(), "\n")
		require.Equal(t, "", lines[len(lines)-1])
		lines = lines[:len(lines)-1]
		require.Len(t, lines, 6, "header, one CA, one bundle, two entries, end")
		var l workloadsv1test.Line
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &l))
		assert.Equal(t, workloadsv1test.Line{Format: workloadsv1test.Format, Version: 1, TrustDomain: "example.org", Agent: agentID.String()}, l)
		l = workloadsv1test.Line{}
		require.NoError(t, json.Unmarshal([]byte(lines[1]), &l))
		assert.Equal(t, ca.Cert().Raw, l.CA)
		l = workloadsv1test.Line{}
		require.NoError(t, json.Unmarshal([]byte(lines[2]), &l))
		assert.Equal(t, "other.test", l.TrustDomain)
		assert.NotEmpty(t, l.Federated)
		l = workloadsv1test.Line{}
		require.NoError(t, json.Unmarshal([]byte(lines[3]), &l))
		require.NotNil(t, l.Entry)
		assert.Equal(t, entries[0].ID, l.Entry.ID)
		assert.Equal(t, []string{"unix:uid:1"}, l.Entry.Selectors)
		assert.Equal(t, []string{"other.test"}, l.Entry.FederatesWith)
		assert.Equal(t, created.Add(time.Hour).Unix(), l.Entry.ExpiresAt)
		require.NotNil(t, l.SVID)
		assert.Equal(t, []int{0}, l.SVID.CAs)
		assert.Equal(t, svids[0].Certificates[0], l.SVID.Leaf)
		assert.Equal(t, dates, strings.Contains(lines[3], `"not_before"`), "dates: %v", dates)
		l = workloadsv1test.Line{}
		require.NoError(t, json.Unmarshal([]byte(lines[5]), &l))
		require.NotNil(t, l.End)
		sum := sha256.Sum256([]byte(strings.Join(lines[:5], "")))
		assert.Equal(t, workloadsv1test.End{Lines: 5, SHA256: hex.EncodeToString(sum[:])}, *l.End)
	}
}

// A Writer counts and hashes every line it writes, however it is given.
func TestWriter(t *testing.T) {
	var b bytes.Buffer
	vw := workloadsv1test.NewWriter(&b)
	vw.Raw(t, []byte("raw\n"))
	vw.Line(t, workloadsv1test.Line{CA: []byte{1}})
	vw.End(t)
	lines := strings.SplitAfter(b.String(), "\n")
	require.Len(t, lines, 4)
	var l workloadsv1test.Line
	require.NoError(t, json.Unmarshal([]byte(lines[2]), &l))
	sum := sha256.Sum256([]byte(lines[0] + lines[1]))
	assert.Equal(t, &workloadsv1test.End{Lines: 2, SHA256: hex.EncodeToString(sum[:])}, l.End)
}
