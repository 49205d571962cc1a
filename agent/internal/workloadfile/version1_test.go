package workloadfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/testing/workloadsv1test"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
)

// fixtureBundle returns the bundle that verifies the SVIDs of
// workloadsFixture.
func fixtureBundle(t testing.TB, svids []issuer.SavedX509SVID) *x509bundle.Bundle {
	t.Helper()
	root, err := x509.ParseCertificate(svids[0].Certificates[1])
	require.NoError(t, err)
	return x509bundle.FromX509Authorities(wtd, []*x509.Certificate{root})
}

// A file of version 1, of either age, is read whole: the same entries,
// SVIDs (those without dates get their leaf's) and federated bundles that
// were written.
func TestOldWorkloadsFileRead(t *testing.T) {
	entries, svids, fed := workloadsFixture(t, 3)
	for _, dates := range []bool{true, false} {
		dir := t.TempDir()
		var b bytes.Buffer
		workloadsv1test.Write(t, &b, wtd, wagent, entries, svids, fed, dates)
		require.NoError(t, os.WriteFile(filepath.Join(dir, datadir.OldWorkloadsFile), b.Bytes(), 0o600))
		w, err := loadOldWorkloads(dir, wtd, fixtureBundle(t, svids), time.Now())
		require.NoError(t, err, "dates: %v", dates)
		assert.Empty(t, w.dropped)
		assert.Equal(t, wagent, w.Agent)
		assert.Equal(t, entries, w.Entries)
		assert.Equal(t, svids, w.SVIDs, "dates: %v", dates)
		require.Len(t, w.Federated, 1)
		assert.True(t, w.Federated[0].Equal(fed[0]))
	}
	_, err := loadOldWorkloads(t.TempDir(), wtd, fixtureBundle(t, svids), time.Now())
	assert.ErrorIs(t, err, ErrNotFound)
}

// A file of version 1 that does not hold together is refused whole, with
// an error that says why and names no secret; one that others may read,
// before it is read.
func TestOldWorkloadsFileRefused(t *testing.T) {
	entries, svids, fed := workloadsFixture(t, 2)
	var good bytes.Buffer
	workloadsv1test.Write(t, &good, wtd, wagent, entries, svids, fed, true)
	lines := strings.SplitAfter(good.String(), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last '\n'
	header, body := lines[0], lines[1:len(lines)-1]
	// file makes a file of header and raw lines with a correct end.
	file := func(header string, raw ...string) []byte {
		var b bytes.Buffer
		vw := workloadsv1test.NewWriter(&b)
		vw.Raw(t, []byte(header))
		for _, l := range raw {
			vw.Raw(t, []byte(l))
		}
		vw.End(t)
		return b.Bytes()
	}
	hdr := func(v int, td, agent string) string {
		return `{"format":"spiffekit-agent-workloads","version":` + string(rune('0'+v)) + `,"trust_domain":"` + td + `","agent":"` + agent + `"}` + "\n"
	}
	changed := []byte(strings.Replace(good.String(), "a.example.org", "b.example.org", 1))
	caOutOfRange := strings.Replace(body[2], `"cas":[0]`, `"cas":[7]`, 1)
	require.NotEqual(t, body[2], caOutOfRange)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "cut short"},
		{"no end", []byte(strings.Join(lines[:len(lines)-1], "")), "cut short"},
		{"the end cut", good.Bytes()[:good.Len()-1], "cut short"},
		{"a byte changed", changed, "digest does not match"},
		{"a line dropped", []byte(header + body[0] + strings.Join(body[2:], "") + lines[len(lines)-1]), "digest does not match"},
		{"after the end", append(bytes.Clone(good.Bytes()), '{'), "goes on after its end line"},
		{"not JSON", []byte("garbage\n"), "line 1"},
		{"a line not JSON", file(header, "garbage\n"), "line 2"},
		{"another format", []byte(`{"format":"x","version":1}` + "\n"), "not a file of saved workload SVIDs"},
		{"version 2", []byte(hdr(2, "example.org", wagent.String())), "version 2 in a file of version 1"},
		{"another trust domain", []byte(hdr(1, "x.test", wagent.String())), `"x.test"`},
		{"no agent", []byte(hdr(1, "example.org", "")), "the agent"},
		{"a long line", append(bytes.Repeat([]byte("x"), maxWorkloadsRecord+1), '\n'), "longer than"},
		{"an unknown line", file(header, "{}\n"), "line 2: not a line of the file"},
		{"a CA out of range", file(header, body[0], body[1], caOutOfRange), "names CA 7 of 1"},
		{"a negative CA", file(header, body[0], body[1], strings.Replace(body[2], `"cas":[0]`, `"cas":[-1]`, 1)), "names CA -1 of 1"},
		{"too many CAs", file(header, body[0], body[1], strings.Replace(body[2], `"cas":[0]`, `"cas":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]`, 1)), "CA certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseOldWorkloads(bytes.NewReader(tc.file), wtd)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), string(svids[0].PrivateKey))
		})
	}
	_, err := parseOldWorkloads(bytes.NewReader(file(header, body...)), wtd)
	require.NoError(t, err, "file makes a file that parses")

	dir := t.TempDir()
	path := filepath.Join(dir, datadir.OldWorkloadsFile)
	require.NoError(t, os.WriteFile(path, good.Bytes(), 0o640))
	_, err = loadOldWorkloads(dir, wtd, fixtureBundle(t, svids), time.Now())
	assert.ErrorIs(t, err, datadir.ErrUnsafeFile)
	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.WriteFile(path, changed, 0o600))
	_, err = loadOldWorkloads(dir, wtd, fixtureBundle(t, svids), time.Now())
	assert.ErrorContains(t, err, "agent: the saved workload SVIDs of version 1 in "+path+": its digest does not match")
}

// In a file of version 1 that holds together, what does not check out is
// left out, and the rest is kept: an entry the registry would not take
// (with its SVID), a federated bundle that does not parse, and each SVID
// that is not what it claims (its entry kept). Never an SVID that cannot
// be verified.
func TestOldWorkloadsFileLeavesOutWhatDoesNotCheckOut(t *testing.T) {
	entries, svids, fed := workloadsFixture(t, 8)
	require.Len(t, svids, 7)
	bundle := fixtureBundle(t, svids)
	badSel := &entries[0]
	badSel.Selectors = []attest.Selector{{Type: "unix", Value: ""}}
	// Another key than the leaf's.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	svids[1].PrivateKey = must(x509.MarshalPKCS8PrivateKey(other))
	// A chain of a CA the bundle does not hold.
	stranger := testca.New(t, wtd)
	chain, key := stranger.NewLeaf(t, entries[2].SPIFFEID)
	svids[2].Certificates = [][]byte{chain[0].Raw, stranger.Cert().Raw}
	svids[2].PrivateKey = must(x509.MarshalPKCS8PrivateKey(key))
	svids[2].NotBefore, svids[2].NotAfter = chain[0].NotBefore, chain[0].NotAfter
	// The leaf of another entry.
	svids[3].Certificates, svids[3].PrivateKey = svids[4].Certificates, svids[4].PrivateKey
	svids[3].NotBefore, svids[3].NotAfter = svids[4].NotBefore, svids[4].NotAfter
	// Dates that are not the leaf's.
	svids[5].NotAfter = svids[5].NotAfter.Add(time.Hour)
	// A key that does not parse.
	svids[6].PrivateKey = []byte("not a key")

	var b bytes.Buffer
	vw := workloadsv1test.NewWriter(&b)
	vw.Line(t, workloadsv1test.Line{Format: workloadsFormat, Version: 1, TrustDomain: wtd.Name(), Agent: wagent.String()})
	vw.Line(t, workloadsv1test.Line{TrustDomain: "other.test", Federated: json.RawMessage(`{"keys":7}`)})
	workloadsv1test.WriteBody(t, vw, entries, svids, fed, true)
	vw.End(t)
	w, err := parseOldWorkloads(&b, wtd)
	require.NoError(t, err)
	w.checkSVIDs(bundle, time.Now())

	assert.Equal(t, entries[1:], w.Entries, "all but the entry with a bad selector")
	require.Len(t, w.SVIDs, 1)
	assert.Equal(t, svids[4], w.SVIDs[0], "the one SVID that checks out")
	require.Len(t, w.Federated, 1)
	assert.True(t, w.Federated[0].Equal(fed[0]))
	all := strings.Join(w.dropped, "\n")
	for _, want := range []string{
		`line 2: the federated bundle of "other.test"`,
		`entry "` + entries[0].ID + `"`,
		`the X509-SVID of entry "` + entries[1].ID + `": its key is not the leaf's`,
		`the X509-SVID of entry "` + entries[2].ID + `": its chain does not verify with the bundle`,
		`the X509-SVID of entry "` + entries[3].ID + `": its leaf names spiffe://example.org/w/4, not spiffe://example.org/w/3`,
		`the X509-SVID of entry "` + entries[5].ID + `": its dates are not the leaf's`,
		`the X509-SVID of entry "` + entries[6].ID + `": its key does not parse`,
	} {
		assert.Contains(t, all, want)
	}
	assert.Len(t, w.dropped, 7)
	assert.NotContains(t, all, "not a key")

	// Expired SVIDs are kept for issuer.Restore to count, with their
	// leaf's dates: their chain is not checked.
	entries, svids, _ = workloadsFixture(t, 2)
	b.Reset()
	workloadsv1test.Write(t, &b, wtd, wagent, entries, svids, nil, false)
	w, err = parseOldWorkloads(&b, wtd)
	require.NoError(t, err)
	w.checkSVIDs(x509bundle.New(wtd), svids[0].NotAfter)
	assert.Empty(t, w.dropped)
	assert.Equal(t, svids, w.SVIDs)

	// An SVID without a CA certificate.
	w.SVIDs[0].Certificates = w.SVIDs[0].Certificates[:1]
	w.checkSVIDs(x509bundle.New(wtd), time.Now())
	assert.Empty(t, w.SVIDs)
	assert.Contains(t, w.dropped[0], "it has no CA certificate")
}

func FuzzParseOldWorkloads(f *testing.F) {
	entries, svids, fed := workloadsFixture(f, 2)
	var good bytes.Buffer
	workloadsv1test.Write(f, &good, wtd, wagent, entries, svids, fed, true)
	f.Add(good.Bytes())
	var nodates bytes.Buffer
	workloadsv1test.Write(f, &nodates, wtd, wagent, entries, svids, fed, false)
	f.Add(nodates.Bytes())
	var empty bytes.Buffer
	workloadsv1test.Write(f, &empty, wtd, wagent, nil, nil, nil, true)
	f.Add(empty.Bytes())
	f.Add([]byte("{}\n"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := parseOldWorkloads(bytes.NewReader(data), wtd)
		if err != nil {
			return
		}
		// The CAs of the file are the bundle: each fuzzing process
		// makes a fixture of its own, with a CA of its own, so that a
		// fixed bundle would verify the seeds in one process only.
		bundle := x509bundle.New(wtd)
		for _, s := range w.SVIDs {
			for _, der := range s.Certificates[1:] {
				if c, err := x509.ParseCertificate(der); err == nil {
					bundle.AddX509Authority(c)
				}
			}
		}
		w.checkSVIDs(bundle, now)
		// What parses is entries the registry takes, and SVIDs of them
		// that check out.
		byID := map[string]registry.Entry{}
		for _, e := range w.Entries {
			require.NoError(t, e.Validate())
			byID[e.ID] = e
		}
		for _, s := range w.SVIDs {
			e, ok := byID[s.EntryID]
			require.True(t, ok)
			require.NoError(t, checkOldSVID(e, &s, bundle, now))
		}
		// And it survives being written in the current version.
		var again bytes.Buffer
		require.NoError(t, writeWorkloads(&again, wtd, w.Agent, w.Entries, w.SVIDs, w.Federated, nil, Taints{}))
		w2, err := parseWorkloads(&again, wtd)
		require.NoError(t, err)
		require.Equal(t, w.Entries, w2.Entries)
		require.Len(t, w2.SVIDs, len(w.SVIDs))
		if len(w.SVIDs) > 0 {
			require.Equal(t, w.SVIDs, w2.SVIDs)
		}
		require.Len(t, w2.Federated, len(w.Federated))
	})
}
