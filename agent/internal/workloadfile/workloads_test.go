package workloadfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
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

// saveWorkloads is Save with the parts of the file as arguments.
func saveWorkloads(dir string, td spiffeid.TrustDomain, agentID spiffeid.ID, entries []registry.Entry,
	svids []issuer.SavedX509SVID, federated []*spiffebundle.Bundle, wits []issuer.SavedWITSVID, taints Taints) (int64, error) {
	return Save(dir, td, &Contents{Agent: agentID, Entries: entries, SVIDs: svids, WITs: wits, Federated: federated, Taints: taints})
}

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
	entries[1].Downstream = true
	old := filepath.Join(dir, datadir.OldWorkloadsFile)
	require.NoError(t, os.WriteFile(old, []byte("{}\n"), 0o600))
	size, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed, nil, Taints{})
	require.NoError(t, err)
	info, err := os.Stat(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	assert.Equal(t, info.Size(), size)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	assert.NoFileExists(t, old, "the file of version 1 is removed")

	w, err := Load(dir, wtd)
	require.NoError(t, err)
	assert.Equal(t, wagent, w.Agent)
	assert.Equal(t, entries, w.Entries)
	assert.Equal(t, svids, w.SVIDs)
	require.Len(t, w.Federated, 1)
	assert.True(t, w.Federated[0].Equal(fed[0]))

	raw, err := os.ReadFile(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	_, recs := splitRecords(t, raw)
	// One CA (shared by both SVIDs), one federated bundle, three entries,
	// the end.
	kinds := ""
	for _, r := range recs {
		kinds += string(r.kind)
	}
	assert.Equal(t, "cfeeez", kinds)

	// Saved again with fewer SVIDs: the file is replaced whole.
	_, err = saveWorkloads(dir, wtd, wagent, entries[:1], svids, nil, nil, Taints{})
	require.NoError(t, err)
	w, err = Load(dir, wtd)
	require.NoError(t, err)
	assert.Equal(t, entries[:1], w.Entries)
	assert.Equal(t, svids[:1], w.SVIDs)
	assert.Empty(t, w.Federated)

	_, err = Load(t.TempDir(), wtd)
	assert.ErrorIs(t, err, ErrNotFound)
}

// The WIT-SVIDs of entries in the file are kept, in a file of version 3;
// those of other entries or revisions are left out, and a file without
// any is of version 2.
func TestWorkloadsFileWITSVIDs(t *testing.T) {
	dir := t.TempDir()
	entries, svids, fed := workloadsFixture(t, 3)
	wit := func(e registry.Entry) issuer.SavedWITSVID {
		return issuer.SavedWITSVID{EntryID: e.ID, Revision: e.Revision, Token: "h." + e.ID + ".s",
			PrivateKey: []byte(`{"kty":"EC","d":"secret"}`), MintedAt: created}
	}
	gone, changed := wit(entries[1]), wit(entries[2])
	gone.EntryID = fmt.Sprintf("%032x", 99)
	changed.Revision++
	wits := []issuer.SavedWITSVID{wit(entries[0]), gone, changed, wit(entries[1])}
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed, wits, Taints{})
	require.NoError(t, err)
	w, err := Load(dir, wtd)
	require.NoError(t, err)
	assert.Equal(t, entries, w.Entries)
	assert.Equal(t, []issuer.SavedWITSVID{wits[0], wits[3]}, w.WITs)
	raw, err := os.ReadFile(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(raw, []byte(`{"format":"spiffekit-agent-workloads","version":3,`)))

	_, err = saveWorkloads(dir, wtd, wagent, entries, svids, fed, []issuer.SavedWITSVID{gone}, Taints{})
	require.NoError(t, err)
	raw, err = os.ReadFile(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(raw, []byte(`{"format":"spiffekit-agent-workloads","version":2,`)), "no WIT-SVID: the previous version")

	// What a file of version 3 must not hold.
	var good bytes.Buffer
	require.NoError(t, writeWorkloads(&good, wtd, wagent, entries, svids, fed, wits[:1], Taints{}))
	header, recs := splitRecords(t, good.Bytes())
	body := recs[:len(recs)-1]
	require.Equal(t, byte(recordWIT), body[len(body)-1].kind)
	withWIT := func(header string, r testRecord) []byte {
		return joinRecords(t, header, append(slices.Clone(body[:len(body)-1]), r))
	}
	witRecord := func(s issuer.SavedWITSVID) testRecord {
		return testRecord{recordWIT, must(appendWIT(nil, &s))}
	}
	empty, noKey, cut := wits[0], wits[0], witRecord(wits[0])
	empty.Token = ""
	noKey.PrivateKey = nil
	cut.body = cut.body[:len(cut.body)-2]
	v2 := strings.Replace(header, `"version":3`, `"version":2`, 1)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"in a file of version 2", withWIT(v2, witRecord(wits[0])), "a WIT-SVID in a file of version 2"},
		{"version 5", []byte(strings.Replace(header, `"version":3`, `"version":5`, 1)), "version 5; this agent reads versions 2 to 4"},
		{"of an entry not in the file", withWIT(header, witRecord(gone)), "which the file does not hold"},
		{"of another revision", withWIT(header, witRecord(changed)), "which the file does not hold"},
		{"no token", withWIT(header, witRecord(empty)), "a token of 0 bytes"},
		{"no key", withWIT(header, witRecord(noKey)), "a key of 0 bytes"},
		{"cut short", withWIT(header, cut), "the record is cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWorkloads(bytes.NewReader(tc.file), wtd)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "secret")
		})
	}
}

// testRecord is a record of a workloads file.
type testRecord struct {
	kind byte
	body []byte
}

// splitRecords splits a workloads file into its header line and records.
func splitRecords(t testing.TB, raw []byte) (string, []testRecord) {
	t.Helper()
	header, rest, ok := bytes.Cut(raw, []byte("\n"))
	require.True(t, ok)
	var recs []testRecord
	for len(rest) > 0 {
		kind := rest[0]
		n, k := binary.Uvarint(rest[1:])
		require.Positive(t, k)
		rest = rest[1+k:]
		recs = append(recs, testRecord{kind, rest[:n]})
		rest = rest[n:]
	}
	return string(header) + "\n", recs
}

// joinRecords makes a workloads file of a header line and records, ending
// it with a correct end record, as a writer that knows the format would.
func joinRecords(t testing.TB, header string, recs []testRecord) []byte {
	t.Helper()
	var b bytes.Buffer
	rw := &recordWriter{w: &b, h: sha256.New()}
	b.WriteString(header)
	rw.h.Write([]byte(header))
	rw.records++
	for _, r := range recs {
		require.NoError(t, rw.record(r.kind, r.body))
	}
	require.NoError(t, rw.record(recordEnd, rw.h.Sum(binary.AppendUvarint(nil, uint64(rw.records)))))
	return b.Bytes()
}

// An SVID minted for another revision of its entry than the one saved is
// saved without it: the entry alone.
func TestWorkloadsFileLeavesOutSVIDsOfOtherRevisions(t *testing.T) {
	dir := t.TempDir()
	entries, svids, _ := workloadsFixture(t, 2)
	svids[0].Revision++
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, nil, nil, Taints{})
	require.NoError(t, err)
	w, err := Load(dir, wtd)
	require.NoError(t, err)
	assert.Len(t, w.Entries, 2)
	assert.Empty(t, w.SVIDs)
}

func TestWorkloadsFileSaveFails(t *testing.T) {
	entries, svids, _ := workloadsFixture(t, 2)
	_, err := saveWorkloads(filepath.Join(t.TempDir(), "missing"), wtd, wagent, entries, svids, nil, nil, Taints{})
	assert.ErrorContains(t, err, "agent: saving the workload SVIDs")
}

// Every way a file can be wrong is refused whole, with an error that says
// what is wrong and shows no secret.
func TestWorkloadsFileRefused(t *testing.T) {
	entries, svids, fed := workloadsFixture(t, 2)
	var good bytes.Buffer
	require.NoError(t, writeWorkloads(&good, wtd, wagent, entries, svids, fed, nil, Taints{}))
	header, recs := splitRecords(t, good.Bytes())
	body := recs[:len(recs)-1] // without the end
	require.Equal(t, byte(recordEntry), body[2].kind, "the first entry, which has an SVID")
	// with replaces record k of the body.
	with := func(k int, r testRecord) []byte {
		rs := slices.Clone(body)
		rs[k] = r
		return joinRecords(t, header, rs)
	}
	// entry returns the record of e with svids[0].
	entry := func(e registry.Entry) testRecord {
		b, err := appendEntry(nil, e, &svids[0], map[string]int{string(svids[0].Certificates[1]): 0})
		require.NoError(t, err)
		return testRecord{recordEntry, b}
	}
	// edited returns the first entry's record with old replaced by new, of
	// the same length (the length prefixes stay true).
	edited := func(old, new string) testRecord {
		require.Len(t, new, len(old))
		require.True(t, bytes.Contains(body[2].body, []byte(old)), old)
		return testRecord{recordEntry, bytes.Replace(body[2].body, []byte(old), []byte(new), 1)}
	}
	changed := bytes.Clone(good.Bytes())
	changed[bytes.Index(changed, []byte("a.example.org"))] = 'b'
	hdr := func(v int, td, agent string) string {
		return fmt.Sprintf(`{"format":"spiffekit-agent-workloads","version":%d,"trust_domain":%q,"agent":%q}`, v, td, agent) + "\n"
	}
	badID, noRev, expiry, dupDNS, badSel := entries[0], entries[0], entries[0], entries[0], entries[0]
	badID.ID = "nothex"
	noRev.Revision = 0
	expiry.ExpiresAt = time.Unix(-5, 0)
	dupDNS.DNSNames = []string{"a.example.org", "a.example.org"}
	badSel.Selectors = []attest.Selector{{Type: "unix", Value: ""}}
	cut := entry(entries[0])
	cut.body = cut.body[:len(cut.body)-3]
	flags := testRecord{recordEntry, must(appendEntry(nil, entries[1], nil, nil))}
	flags.body[len(flags.body)-1] = 0x80 // with no SVID, the flags are the last byte
	after := entry(entries[0])
	after.body = append(after.body, 0)
	manySels := entry(entries[0])
	manySels.body = append(appendString(appendString(appendString(nil, entries[0].ID), entries[0].SPIFFEID.String()), wagent.String()), 0xff, 0x7f)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "cut short"},
		{"no end", good.Bytes()[:len(good.Bytes())-len(recs[len(recs)-1].body)-2], "cut short"},
		{"the end cut", good.Bytes()[:good.Len()-1], "cut short"},
		{"cut in a length", append([]byte(header), recordCA, 0x80), "cut short"},
		{"a byte changed", changed, "digest does not match"},
		{"a record dropped", func() []byte {
			b := joinRecords(t, header, append(slices.Clone(body[:1]), body[2:]...))
			end := 3 + sha256.Size // 'z', its length, the count, the digest
			return append(b[:len(b)-end], good.Bytes()[good.Len()-end:]...)
		}(), "digest does not match"},
		{"after the end", append(bytes.Clone(good.Bytes()), 'c'), "goes on after its end record"},
		{"not JSON", []byte("garbage\n"), "the header"},
		{"another format", []byte(`{"format":"x","version":2}` + "\n"), "not a file of saved workload SVIDs"},
		{"version 1", []byte(`{"format":"spiffekit-agent-workloads","version":1}` + "\n"), "version 1; this agent reads versions 2 to 4"},
		{"another trust domain", []byte(hdr(2, "x.test", wagent.String())), `"x.test"`},
		{"no agent", []byte(hdr(2, "example.org", "")), "the agent"},
		{"a long header", bytes.Repeat([]byte("x"), 1<<17), "the header: too long"},
		{"a long record", append([]byte(header), binary.AppendUvarint([]byte{recordCA}, maxWorkloadsRecord+1)...), "longer than"},
		{"an unknown record", with(0, testRecord{'x', nil}), "record 1: not a record of the file"},
		{"an empty CA", with(0, testRecord{recordCA, nil}), "an empty CA certificate"},
		{"a CA out of range", with(2, testRecord{recordEntry, must(appendEntry(nil, entries[0], &svids[0], map[string]int{string(svids[0].Certificates[1]): 7}))}), "names CA 7 of 1"},
		{"a bad entry ID", with(2, entry(badID)), "an invalid entry ID"},
		{"a bad selector", with(2, entry(badSel)), "selector"},
		{"an expiry out of range", with(2, entry(expiry)), "expiry -5 out of range"},
		{"no revision", with(2, entry(noRev)), "no revision"},
		{"a bad SPIFFE ID", with(2, edited("spiffe://example.org/w/0", "http://example.org/w/0xx")), "entry"},
		{"a bad parent ID", with(2, edited(wagent.String(), strings.Replace(wagent.String(), "spiffe:", "spiffX:", 1))), "entry"},
		{"a bad federated trust domain", with(2, edited("other.test", "Other.test")), "entry"},
		{"an invalid entry", with(2, entry(dupDNS)), "duplicate DNS name"},
		{"an entry cut short", with(2, cut), "the record is cut short"},
		{"unknown flags", with(3, flags), "unknown flags"},
		{"bytes after the last field", with(2, after), "goes on after its last field"},
		{"too many selectors", with(2, manySels), "16383 selectors"},
		{"a bad time", with(2, edited(string(must(created.MarshalBinary())), "x"+string(must(created.MarshalBinary()))[1:])), "a time"},
		{"a bad federated bundle", with(1, testRecord{recordFederated, append(appendString(nil, "other.test"), `{"keys":7}`...)}), "record 2"},
		{"a federated bundle without trust domain", with(1, testRecord{recordFederated, appendString(nil, "")}), "record 2"},
		{"a federated bundle cut short", with(1, testRecord{recordFederated, []byte{9}}), "record 2: the record is cut short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWorkloads(bytes.NewReader(tc.file), wtd)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), string(svids[0].PrivateKey))
		})
	}
	_, err := parseWorkloads(bytes.NewReader(joinRecords(t, header, body)), wtd)
	require.NoError(t, err, "joinRecords makes a file that parses")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A file of the data directory that another uid owns or others may read is
// refused before it is read.
func TestWorkloadsFileOpenToOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	entries, svids, _ := workloadsFixture(t, 1)
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, nil, nil, Taints{})
	require.NoError(t, err)
	path := filepath.Join(dir, datadir.WorkloadsFile)
	require.NoError(t, os.Chmod(path, 0o640))
	_, err = Load(dir, wtd)
	assert.ErrorIs(t, err, datadir.ErrUnsafeFile)
	require.NoError(t, os.Chmod(path, 0o600))
	require.NoError(t, os.WriteFile(path, []byte("x\n"), 0o600))
	_, err = Load(dir, wtd)
	assert.ErrorContains(t, err, "agent: the saved workload SVIDs in "+path+": the header")
}

func FuzzParseWorkloads(f *testing.F) {
	entries, svids, fed := workloadsFixture(f, 2)
	var good bytes.Buffer
	require.NoError(f, writeWorkloads(&good, wtd, wagent, entries, svids, fed, nil, Taints{}))
	f.Add(good.Bytes())
	var empty bytes.Buffer
	require.NoError(f, writeWorkloads(&empty, wtd, wagent, nil, nil, nil, nil, Taints{}))
	f.Add(empty.Bytes())
	var withWITs bytes.Buffer
	require.NoError(f, writeWorkloads(&withWITs, wtd, wagent, entries, svids, fed, []issuer.SavedWITSVID{{
		EntryID: entries[0].ID, Revision: entries[0].Revision, Token: "h.p.s", PrivateKey: []byte("{}"), MintedAt: created}}, Taints{}))
	f.Add(withWITs.Bytes())
	var withTaints bytes.Buffer
	require.NoError(f, writeWorkloads(&withTaints, wtd, wagent, entries, svids, fed, nil, taintsFixture(f, svids)))
	f.Add(withTaints.Bytes())
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := parseWorkloads(bytes.NewReader(data), wtd)
		if err != nil {
			return
		}
		// What parses is entries the registry takes and SVIDs of them.
		ids := map[string]bool{}
		for _, e := range w.Entries {
			require.NoError(t, e.Validate())
			ids[e.ID] = true
		}
		var whole []issuer.SavedX509SVID // with a CA: those written again
		for _, s := range w.SVIDs {
			require.True(t, ids[s.EntryID])
			require.NotEmpty(t, s.Certificates)
			if len(s.Certificates) >= 2 {
				whole = append(whole, s)
			}
		}
		// And it survives a round trip.
		var again bytes.Buffer
		require.NoError(t, writeWorkloads(&again, wtd, w.Agent, w.Entries, w.SVIDs, w.Federated, w.WITs, w.Taints))
		w2, err := parseWorkloads(&again, wtd)
		require.NoError(t, err)
		require.Equal(t, w.Entries, w2.Entries)
		require.Equal(t, w.WITs, w2.WITs)
		require.Equal(t, len(whole), len(w2.SVIDs))
		require.Len(t, w2.Federated, len(w.Federated))
		requireSameTaints(t, w.Taints, w2.Taints)
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
			size, err = saveWorkloads(dir, wtd, wagent, entries, svids, nil, nil, Taints{})
			require.NoError(b, err)
		}
		b.ReportMetric(float64(size), "bytes")
	})
	b.Run("load", func(b *testing.B) {
		_, err := saveWorkloads(dir, wtd, wagent, entries, svids, nil, nil, Taints{})
		require.NoError(b, err)
		for b.Loop() {
			w, err := Load(dir, wtd)
			require.NoError(b, err)
			require.Len(b, w.SVIDs, n)
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

// taintsFixture returns taints naming the CA of svids[0], a JWT key and a
// WIT key.
func taintsFixture(t testing.TB, svids []issuer.SavedX509SVID) Taints {
	t.Helper()
	ca, err := x509.ParseCertificate(svids[0].Certificates[1])
	require.NoError(t, err)
	return Taints{CAs: []*x509.Certificate{ca}, JWT: []string{"jwt-1", "jwt-2"}, WIT: []string{"wit-1"}}
}

// requireSameTaints fails unless a and b name the same CAs and keys.
func requireSameTaints(t testing.TB, a, b Taints) {
	t.Helper()
	der := func(l Taints) [][]byte {
		var out [][]byte
		for _, c := range l.CAs {
			out = append(out, c.Raw)
		}
		return out
	}
	require.Equal(t, der(a), der(b))
	require.Equal(t, a.JWT, b.JWT)
	require.Equal(t, a.WIT, b.WIT)
}

// The tainted CAs and keys are kept, in a file of version 4 (whatever else
// it holds), and read back; a file without them stays of the version
// before, and a file of a version before, without them, still loads. A
// taint that does not check out refuses the file.
func TestWorkloadsFileTaints(t *testing.T) {
	dir := t.TempDir()
	entries, svids, fed := workloadsFixture(t, 2)
	taints := taintsFixture(t, svids)
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed, nil, taints)
	require.NoError(t, err)
	w, err := Load(dir, wtd)
	require.NoError(t, err)
	requireSameTaints(t, taints, w.Taints)
	assert.Equal(t, entries, w.Entries)
	assert.Len(t, w.SVIDs, 1)
	raw, err := os.ReadFile(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(raw, []byte(`{"format":"spiffekit-agent-workloads","version":4,`)), "%.80s", raw)
	info, err := os.Stat(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	for _, l := range []Taints{{CAs: taints.CAs}, {JWT: taints.JWT}, {WIT: taints.WIT}} {
		_, err = saveWorkloads(dir, wtd, wagent, entries, svids, fed, nil, l)
		require.NoError(t, err)
		w, err = Load(dir, wtd)
		require.NoError(t, err)
		requireSameTaints(t, l, w.Taints)
	}

	// Without taints, the version before, which loads with none.
	_, err = saveWorkloads(dir, wtd, wagent, entries, svids, fed, nil, Taints{})
	require.NoError(t, err)
	raw, err = os.ReadFile(filepath.Join(dir, datadir.WorkloadsFile))
	require.NoError(t, err)
	assert.True(t, bytes.HasPrefix(raw, []byte(`{"format":"spiffekit-agent-workloads","version":2,`)), "%.80s", raw)
	w, err = Load(dir, wtd)
	require.NoError(t, err)
	assert.True(t, w.Taints.Empty())

	// What a file of version 4 must not hold.
	var good bytes.Buffer
	require.NoError(t, writeWorkloads(&good, wtd, wagent, entries, svids, fed, nil, taints))
	header, recs := splitRecords(t, good.Bytes())
	body := recs[:len(recs)-1]
	require.Equal(t, byte(recordTaintedCA), body[0].kind)
	with := func(header string, r testRecord) []byte {
		return joinRecords(t, header, append([]testRecord{r}, body[1:]...))
	}
	v3 := strings.Replace(header, `"version":4`, `"version":3`, 1)
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"in a file of version 3", with(v3, body[0]), "record 1: a taint in a file of version 3"},
		{"a CA that does not parse", with(header, testRecord{recordTaintedCA, []byte{1, 2, 3}}), "record 1: a tainted CA"},
		{"an empty JWT kid", with(header, testRecord{recordTaintedJ, nil}), "record 1: an invalid kid of a tainted key"},
		{"a WIT kid with a control character", with(header, testRecord{recordTaintedW, []byte("a\nb")}), "an invalid kid"},
		{"a kid too long", with(header, testRecord{recordTaintedJ, bytes.Repeat([]byte("k"), registry.MaxAuthorityIDLen+1)}), "an invalid kid"},
		{"a kid not UTF-8", with(header, testRecord{recordTaintedW, []byte{0xff}}), "an invalid kid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWorkloads(bytes.NewReader(tc.file), wtd)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err = parseWorkloads(bytes.NewReader(joinRecords(t, header, body)), wtd)
	require.NoError(t, err, "joinRecords makes a file that parses")
}

// The tainted CAs read back are the CAs that were saved, byte for byte:
// each record is read into one buffer, reused for the next record that
// fits in it, which a certificate parsed from a record must not share (a
// CA that no longer equals itself would not be found among the taints
// after a restart).
func TestWorkloadsFileTaintedCAsKeepTheirBytes(t *testing.T) {
	dir := t.TempDir()
	entries, svids, fed := workloadsFixture(t, 2)
	cas := []*x509.Certificate{testca.New(t, wtd).Cert(), testca.New(t, wtd).Cert()}
	// The first is the longer, so that the second is read into its buffer.
	slices.SortFunc(cas, func(a, b *x509.Certificate) int { return len(b.Raw) - len(a.Raw) })
	_, err := saveWorkloads(dir, wtd, wagent, entries, svids, fed, nil, Taints{CAs: cas})
	require.NoError(t, err)
	w, err := Load(dir, wtd)
	require.NoError(t, err)
	require.Len(t, w.Taints.CAs, 2)
	for k := range cas {
		assert.True(t, w.Taints.CAs[k].Equal(cas[k]), "tainted CA %d read back differs from the one saved", k)
	}
}
