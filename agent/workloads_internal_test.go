package agent

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	wtd     = spiffeid.RequireTrustDomainFromString("example.org")
	wagent  = spiffeid.RequireFromPath(wtd, "/spiffekit/agent/join_token/1")
	fedTD   = spiffeid.RequireTrustDomainFromString("other.test")
	created = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
)

// workloadsFixture returns n entries, an SVID (made by a test CA) for each
// but the last, and a federated bundle.
func workloadsFixture(t testing.TB, n int) ([]registry.Entry, []issuer.SavedX509SVID, []*spiffebundle.Bundle) {
	t.Helper()
	ca := testca.New(t, wtd)
	var entries []registry.Entry
	var svids []issuer.SavedX509SVID
	for k := range n {
		e := registry.Entry{
			ID:            fmt.Sprintf("%032x", k+1),
			SPIFFEID:      spiffeid.RequireFromPath(wtd, fmt.Sprintf("/w/%d", k)),
			ParentID:      wagent,
			Selectors:     []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", k)}},
			X509SVIDTTL:   time.Hour,
			DNSNames:      []string{"a.example.org"},
			FederatesWith: []spiffeid.TrustDomain{fedTD},
			Hint:          "h",
			Revision:      int64(k + 1),
			CreatedAt:     created,
			UpdatedAt:     created,
		}
		if k == 0 {
			e.ExpiresAt = time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
		}
		entries = append(entries, e)
		if k == n-1 {
			continue
		}
		chain, key := ca.NewLeaf(t, e.SPIFFEID)
		chain = append(chain, ca.Cert())
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		require.NoError(t, err)
		der := make([][]byte, len(chain))
		for j, c := range chain {
			der[j] = c.Raw
		}
		svids = append(svids, issuer.SavedX509SVID{EntryID: e.ID, Revision: e.Revision, Certificates: der,
			PrivateKey: pkcs8, NotBefore: chain[0].NotBefore, NotAfter: chain[0].NotAfter, MintedAt: created})
	}
	fed := spiffebundle.New(fedTD)
	fed.AddX509Authority(testca.New(t, fedTD).Root())
	return entries, svids, []*spiffebundle.Bundle{fed}
}

func TestWorkloadsFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	entries, svids, fed := workloadsFixture(t, 3)
	size, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed)
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, workloadsFile))
	require.NoError(t, err)
	assert.Equal(t, info.Size(), size)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	w, err := loadWorkloads(dir, wtd)
	require.NoError(t, err)
	assert.Equal(t, wagent, w.agent)
	assert.Equal(t, entries, w.entries)
	assert.Equal(t, svids, w.svids)
	require.Len(t, w.federated, 1)
	assert.True(t, w.federated[0].Equal(fed[0]))

	raw, err := os.ReadFile(filepath.Join(dir, workloadsFile))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	// A header, one CA (shared by both SVIDs), one federated bundle, three
	// entries, the end.
	assert.Len(t, lines, 7)

	// Saved again with fewer SVIDs: the file is replaced whole.
	_, err = saveWorkloads(dir, wtd, wagent, entries[:1], svids, nil)
	require.NoError(t, err)
	w, err = loadWorkloads(dir, wtd)
	require.NoError(t, err)
	assert.Equal(t, entries[:1], w.entries)
	assert.Equal(t, svids[:1], w.svids)
	assert.Empty(t, w.federated)

	_, err = loadWorkloads(t.TempDir(), wtd)
	assert.ErrorIs(t, err, errNoWorkloads)
}

// An SVID minted for another revision of its entry than the one saved is
// saved without it: the entry alone.
func TestWorkloadsFileLeavesOutSVIDsOfOtherRevisions(t *testing.T) {
	dir := t.TempDir()
	entries, svids, _ := workloadsFixture(t, 2)
	svids[0].Revision++
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, nil)
	require.NoError(t, err)
	w, err := loadWorkloads(dir, wtd)
	require.NoError(t, err)
	assert.Len(t, w.entries, 2)
	assert.Empty(t, w.svids)
}

func TestWorkloadsFileSaveFails(t *testing.T) {
	entries, svids, _ := workloadsFixture(t, 2)
	_, err := saveWorkloads(filepath.Join(t.TempDir(), "missing"), wtd, wagent, entries, svids, nil)
	assert.ErrorContains(t, err, "agent: saving the workload SVIDs")
}

// Every way a file can be wrong is refused whole, with an error that says
// what is wrong and shows no secret.
func TestWorkloadsFileRefused(t *testing.T) {
	entries, svids, fed := workloadsFixture(t, 2)
	dir := t.TempDir()
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed)
	require.NoError(t, err)
	good, err := os.ReadFile(filepath.Join(dir, workloadsFile))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(good), "\n")
	lines = lines[:len(lines)-1] // after the last '\n'
	n := len(lines)
	first := n - 1 - len(entries) // the first entry's line, which has an SVID
	// resum recomputes the end line over the lines before it, as a writer
	// that knows the format would.
	resum := func(body []string) string {
		var b bytes.Buffer
		hw := &hashingWriter{w: &b, h: sha256.New()}
		for _, l := range body {
			hw.h.Write([]byte(l))
			hw.lines++
			b.WriteString(l)
		}
		require.NoError(t, hw.line(workloadsLine{End: &workloadsEnd{Lines: hw.lines, SHA256: hex.EncodeToString(hw.h.Sum(nil))}}))
		return b.String()
	}
	replace := func(k int, l string) string {
		body := append([]string(nil), lines[:n-1]...)
		body[k] = l + "\n"
		return resum(body)
	}
	key := svids[0].PrivateKey
	for _, tc := range []struct {
		name, file, want string
	}{
		{"empty", "", "cut short"},
		{"no end", strings.Join(lines[:n-1], ""), "cut short"},
		{"no newline at the end", strings.TrimSuffix(string(good), "\n"), "cut short"},
		{"a line changed", strings.Replace(string(good), `"hint":"h"`, `"hint":"x"`, 1), "digest does not match"},
		{"a line dropped", strings.Join(append(append([]string{}, lines[:2]...), lines[3:]...), ""), "digest does not match"},
		{"after the end", string(good) + "{}\n", "goes on after its end line"},
		{"not JSON", "garbage\n", "line 1"},
		{"another format", `{"format":"x","version":1}` + "\n", "not a file of saved workload SVIDs"},
		{"another version", `{"format":"spiffekit-agent-workloads","version":2}` + "\n", "version 2"},
		{"another trust domain", `{"format":"spiffekit-agent-workloads","version":1,"trust_domain":"x.test"}` + "\n", `"x.test"`},
		{"no agent", `{"format":"spiffekit-agent-workloads","version":1,"trust_domain":"example.org"}` + "\n", "the agent"},
		{"an empty line", replace(1, `{}`), "line 2: not a line of the file"},
		{"a CA out of range", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"cas":[0]`, `"cas":[7]`, 1)), "names CA 7 of 1"},
		{"a bad entry ID", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), entries[0].ID, "nothex", 1)), "an invalid entry ID"},
		{"a bad selector", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"unix:uid:0"`, `"nocolon"`, 1)), "no ':'"},
		{"an expiry out of range", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"expires_at":1925089445`, `"expires_at":-5`, 1)), "expiry -5 out of range"},
		{"no revision", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"revision":1`, `"revision":0`, 1)), "no revision"},
		{"a bad SPIFFE ID", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"spiffe_id":"spiffe://example.org/w/0"`, `"spiffe_id":"http://x"`, 1)), "entry"},
		{"a bad parent ID", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"parent_id":"spiffe://`, `"parent_id":"x://`, 1)), "entry"},
		{"a bad federated trust domain", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"federates_with":["other.test"]`, `"federates_with":["Bad TD"]`, 1)), "entry"},
		{"an invalid entry", replace(first, strings.Replace(strings.TrimSuffix(lines[first], "\n"), `"dns_names":["a.example.org"]`, `"dns_names":["a.example.org","a.example.org"]`, 1)), "duplicate DNS name"},
		{"a bad federated bundle", replace(2, `{"trust_domain":"other.test","federated":{"keys":7}}`), "line 3"},
		{"a federated bundle without trust domain", replace(2, `{"federated":{}}`), "line 3"},
		{"a long line", strings.Repeat("x", maxWorkloadsLine+1), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWorkloads(strings.NewReader(tc.file), wtd)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), string(key))
		})
	}
	_, err = parseWorkloads(strings.NewReader(resum(lines[:n-1])), wtd)
	require.NoError(t, err, "resum makes a file that parses")
}

// A file of the data directory that another uid owns or others may read is
// refused before it is read.
func TestWorkloadsFileOpenToOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	entries, svids, _ := workloadsFixture(t, 1)
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, nil)
	require.NoError(t, err)
	path := filepath.Join(dir, workloadsFile)
	require.NoError(t, os.Chmod(path, 0o640))
	_, err = loadWorkloads(dir, wtd)
	assert.ErrorIs(t, err, errUnsafeFile)
	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.WriteFile(path, []byte("x\n"), 0o600))
	_, err = loadWorkloads(dir, wtd)
	assert.ErrorContains(t, err, "agent: the saved workload SVIDs in "+path+": line 1")
}

func FuzzParseWorkloads(f *testing.F) {
	entries, svids, fed := workloadsFixture(f, 2)
	dir := f.TempDir()
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed)
	require.NoError(f, err)
	good, err := os.ReadFile(filepath.Join(dir, workloadsFile))
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte(`{"format":"spiffekit-agent-workloads","version":1,"trust_domain":"example.org","agent":"spiffe://example.org/a"}` + "\n" + `{"end":{"lines":1,"sha256":""}}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := parseWorkloads(bytes.NewReader(data), wtd)
		if err != nil {
			return
		}
		// What parses is entries the registry takes and SVIDs of them.
		ids := map[string]bool{}
		for _, e := range w.entries {
			require.NoError(t, e.Validate())
			ids[e.ID] = true
		}
		for _, s := range w.svids {
			require.True(t, ids[s.EntryID])
			require.NotEmpty(t, s.Certificates)
		}
	})
}

// BenchmarkWorkloadsFile measures the cost of saving and of reading the
// workloads file of an agent with 10,000 entries, each with its SVID.
func BenchmarkWorkloadsFile(b *testing.B) {
	const n = 10_000
	entries, svids := benchWorkloads(b, n)
	dir := b.TempDir()
	b.Run("save", func(b *testing.B) {
		var size int64
		for b.Loop() {
			var err error
			size, err = saveWorkloads(dir, wtd, wagent, entries, svids, nil)
			require.NoError(b, err)
		}
		b.ReportMetric(float64(size), "bytes")
	})
	b.Run("load", func(b *testing.B) {
		_, err := saveWorkloads(dir, wtd, wagent, entries, svids, nil)
		require.NoError(b, err)
		for b.Loop() {
			w, err := loadWorkloads(dir, wtd)
			require.NoError(b, err)
			require.Len(b, w.svids, n)
		}
	})
}

// benchWorkloads returns n entries, each with an SVID of a P-256 key
// signed by one CA, as an agent holds them.
func benchWorkloads(b testing.TB, n int) ([]registry.Entry, []issuer.SavedX509SVID) {
	ca := testca.New(b, wtd)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(b, err)
	chain, _ := ca.NewLeaf(b, spiffeid.RequireFromPath(wtd, "/w"))
	entries := make([]registry.Entry, n)
	svids := make([]issuer.SavedX509SVID, n)
	for k := range n {
		entries[k] = registry.Entry{ID: fmt.Sprintf("%032x", k+1), SPIFFEID: spiffeid.RequireFromPath(wtd, fmt.Sprintf("/w/%d", k)),
			ParentID: wagent, Selectors: []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", k)}},
			Revision: 1, CreatedAt: created, UpdatedAt: created}
		// The same leaf each time: the file's cost does not depend on
		// what the certificate says.
		svids[k] = issuer.SavedX509SVID{EntryID: entries[k].ID, Revision: 1,
			Certificates: [][]byte{chain[0].Raw, ca.Cert().Raw}, PrivateKey: pkcs8, NotBefore: chain[0].NotBefore,
			NotAfter: chain[0].NotAfter, MintedAt: created}
	}
	return entries, svids
}
