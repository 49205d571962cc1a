// Package workloadsv1test is test only: it writes the node agent's saved
// workload SVIDs file of version 1 (workload-svids.jsonl, JSON lines) as
// the agents of that version did, for the tests of the agents that read
// it once, on their upgrade: whole files of what an agent held, or line by
// line, to make files that do not hold together.
//
//	var b bytes.Buffer
//	workloadsv1test.Write(t, &b, td, agentID, entries, svids, federated, true)
//	os.WriteFile(filepath.Join(dir, "workload-svids.jsonl"), b.Bytes(), 0o600)
package workloadsv1test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Format is the format the header of a workloads file names.
const Format = "spiffekit-agent-workloads"

// The format of version 1 as the agents that wrote it defined it
// (agent/workloads.go before the binary records), for the tests to write
// files of that version as those agents did: what the reader must take.
type (
	// Line is one line of a file of version 1; exactly one of its parts
	// is set, except in the header.
	Line struct {
		Format      string          `json:"format,omitempty"`
		Version     int             `json:"version,omitempty"`
		TrustDomain string          `json:"trust_domain,omitempty"`
		Agent       string          `json:"agent,omitempty"`
		CA          []byte          `json:"ca,omitempty"`
		Federated   json.RawMessage `json:"federated,omitempty"`
		Entry       *Entry          `json:"entry,omitempty"`
		SVID        *SVID           `json:"svid,omitempty"`
		End         *End            `json:"end,omitempty"`
	}
	// Entry is a registry.Entry in a file of version 1.
	Entry struct {
		ID            string    `json:"id"`
		SPIFFEID      string    `json:"spiffe_id"`
		ParentID      string    `json:"parent_id"`
		Selectors     []string  `json:"selectors"`
		X509SVIDTTL   int64     `json:"x509_svid_ttl_ns,omitempty"`
		JWTSVIDTTL    int64     `json:"jwt_svid_ttl_ns,omitempty"`
		DNSNames      []string  `json:"dns_names,omitempty"`
		FederatesWith []string  `json:"federates_with,omitempty"`
		Hint          string    `json:"hint,omitempty"`
		ExpiresAt     int64     `json:"expires_at,omitempty"`
		Revision      int64     `json:"revision"`
		CreatedAt     time.Time `json:"created_at"`
		UpdatedAt     time.Time `json:"updated_at"`
	}
	// SVID is the SVID of an entry in the last files of version 1; the
	// first ones lacked the dates.
	SVID struct {
		Leaf      []byte    `json:"leaf"`
		CAs       []int     `json:"cas"`
		Key       []byte    `json:"key"`
		NotBefore time.Time `json:"not_before"`
		NotAfter  time.Time `json:"not_after"`
		MintedAt  time.Time `json:"minted_at"`
	}
	// End is the end line of a file of version 1.
	End struct {
		Lines  int    `json:"lines"`
		SHA256 string `json:"sha256"`
	}
)

// Writer writes a file of version 1 line by line, as the agents of that
// version did: each line one JSON object, counted and hashed, and the end
// line last.
type Writer struct {
	w     io.Writer
	h     []byte // what the digest covers
	lines int
}

// NewWriter returns a Writer of a file of version 1 to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Line writes v as a line, counted and hashed.
func (vw *Writer) Line(t testing.TB, v any) {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, json.NewEncoder(&b).Encode(v))
	vw.Raw(t, b.Bytes())
}

// Raw writes raw as a line (which it must end), counted and hashed.
func (vw *Writer) Raw(t testing.TB, raw []byte) {
	t.Helper()
	vw.h = append(vw.h, raw...)
	vw.lines++
	_, err := vw.w.Write(raw)
	require.NoError(t, err)
}

// End writes the end line, with the number of lines before it and their
// digest.
func (vw *Writer) End(t testing.TB) {
	t.Helper()
	sum := sha256.Sum256(vw.h)
	var b bytes.Buffer
	require.NoError(t, json.NewEncoder(&b).Encode(Line{End: &End{Lines: vw.lines, SHA256: hex.EncodeToString(sum[:])}}))
	_, err := vw.w.Write(b.Bytes())
	require.NoError(t, err)
}

// WriteBody writes the lines of a file of version 1 after its header,
// without the end: the CAs, the federated bundles and the entries with
// their SVIDs (with their dates when dates).
func WriteBody(t testing.TB, vw *Writer, entries []registry.Entry, svids []issuer.SavedX509SVID,
	federated []*spiffebundle.Bundle, dates bool) {
	t.Helper()
	byEntry := map[string]*issuer.SavedX509SVID{}
	for k := range svids {
		byEntry[svids[k].EntryID] = &svids[k]
	}
	cas := map[string]int{}
	for _, e := range entries {
		if s := byEntry[e.ID]; s != nil {
			for _, der := range s.Certificates[1:] {
				if _, ok := cas[string(der)]; !ok {
					cas[string(der)] = len(cas)
					vw.Line(t, Line{CA: der})
				}
			}
		}
	}
	for _, b := range federated {
		doc, err := b.Marshal()
		require.NoError(t, err)
		vw.Line(t, Line{TrustDomain: b.TrustDomain().Name(), Federated: doc})
	}
	for _, e := range entries {
		se := &Entry{ID: e.ID, SPIFFEID: e.SPIFFEID.String(), ParentID: e.ParentID.String(),
			X509SVIDTTL: int64(e.X509SVIDTTL), JWTSVIDTTL: int64(e.JWTSVIDTTL), DNSNames: e.DNSNames, Hint: e.Hint,
			Revision: e.Revision, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, Selectors: []string{}}
		if !e.ExpiresAt.IsZero() {
			se.ExpiresAt = e.ExpiresAt.Unix()
		}
		for _, sel := range e.Selectors {
			se.Selectors = append(se.Selectors, sel.String())
		}
		for _, td := range e.FederatesWith {
			se.FederatesWith = append(se.FederatesWith, td.Name())
		}
		l := Line{Entry: se}
		if s := byEntry[e.ID]; s != nil && s.Revision == e.Revision {
			ss := &SVID{Leaf: s.Certificates[0], Key: s.PrivateKey, MintedAt: s.MintedAt}
			if dates {
				ss.NotBefore, ss.NotAfter = s.NotBefore, s.NotAfter
			}
			for _, der := range s.Certificates[1:] {
				ss.CAs = append(ss.CAs, cas[string(der)])
			}
			l.SVID = ss
		}
		if !dates && l.SVID != nil {
			// The first files of version 1 had no dates at all: not
			// even zero ones.
			raw, err := json.Marshal(l)
			require.NoError(t, err)
			raw = bytes.Replace(raw, []byte(`"not_before":"0001-01-01T00:00:00Z","not_after":"0001-01-01T00:00:00Z",`), nil, 1)
			vw.Raw(t, append(raw, '\n'))
			continue
		}
		vw.Line(t, l)
	}
}

// Write writes to w a whole file of version 1 of the agent agentID of td,
// holding entries, their SVIDs (with their dates when dates) and the
// federated bundles.
func Write(t testing.TB, w io.Writer, td spiffeid.TrustDomain, agentID spiffeid.ID, entries []registry.Entry,
	svids []issuer.SavedX509SVID, federated []*spiffebundle.Bundle, dates bool) {
	t.Helper()
	vw := NewWriter(w)
	vw.Line(t, Line{Format: Format, Version: 1, TrustDomain: td.Name(), Agent: agentID.String()})
	WriteBody(t, vw, entries, svids, federated, dates)
	vw.End(t)
}
