package workloadfile

import (
	"bufio"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// The workloads file of version 1, workload-svids.jsonl, is read once, on
// the upgrade of an agent that wrote one: when no file of a later version
// is there. It was JSON lines: a header, then one line per CA certificate
// (which the SVIDs name by number from 0), per federated bundle and per
// entry (with its SVID, if it had one), then an end line with the number
// of lines before it and the SHA-256 of their bytes, in hexadecimal.
//
// The agent trusts what it reads no more than it must: a file whose
// digest or line count does not match, that is cut short, or a line that
// does not decode, refuses the file whole (nothing in it can be told
// apart from what someone changed); an entry the registry would not take
// now is left out, with its SVID; and each SVID is checked in full
// (see checkOldSVID), unlike those of a later version, and left out, its
// entry kept, when it does not check out.
const oldWorkloadsVersion = 1

// oldWorkloadsLine is one line of a workloads file of version 1; exactly
// one of its parts is set, except in the header.
type oldWorkloadsLine struct {
	Format      string `json:"format,omitempty"`
	Version     int    `json:"version,omitempty"`
	TrustDomain string `json:"trust_domain,omitempty"`
	Agent       string `json:"agent,omitempty"`

	CA        []byte          `json:"ca,omitempty"`
	Federated json.RawMessage `json:"federated,omitempty"` // a bundle document of TrustDomain
	Entry     *oldEntry       `json:"entry,omitempty"`
	SVID      *oldSVID        `json:"svid,omitempty"` // with Entry
	End       *oldEnd         `json:"end,omitempty"`
}

// oldEntry is a registry.Entry in a workloads file of version 1.
type oldEntry struct {
	ID            string    `json:"id"`
	SPIFFEID      string    `json:"spiffe_id"`
	ParentID      string    `json:"parent_id"`
	Selectors     []string  `json:"selectors"`
	X509SVIDTTL   int64     `json:"x509_svid_ttl_ns,omitempty"`
	JWTSVIDTTL    int64     `json:"jwt_svid_ttl_ns,omitempty"`
	DNSNames      []string  `json:"dns_names,omitempty"`
	FederatesWith []string  `json:"federates_with,omitempty"`
	Hint          string    `json:"hint,omitempty"`
	ExpiresAt     int64     `json:"expires_at,omitempty"` // seconds since the epoch; 0: none
	Revision      int64     `json:"revision"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// oldSVID is the X509-SVID of an entry in a workloads file of version 1.
// The first files of the version lack NotBefore and NotAfter.
type oldSVID struct {
	Leaf      []byte    `json:"leaf"`
	CAs       []int     `json:"cas"` // the CA lines, by number from 0, in chain order
	Key       []byte    `json:"key"` // PKCS#8
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	MintedAt  time.Time `json:"minted_at"`
}

// oldEnd is the end line of a workloads file of version 1.
type oldEnd struct {
	Lines  int    `json:"lines"`
	SHA256 string `json:"sha256"`
}

// oldWorkloads is what loadOldWorkloads took from a file of version 1,
// and what it left out, and why (a message per entry or SVID left out;
// none names a secret).
type oldWorkloads struct {
	*Contents
	dropped []string
}

// LoadVersion1 reads the workloads file of version 1 of the data directory
// dir, written for trust domain td, as Load does a file of a later
// version, and checks its SVIDs with bundle at now. It returns ErrNotFound
// when there is none, and refuses the file whole when it does not hold
// together; what it leaves out of one that does (see the version's doc),
// it says in a message each, which names no secret.
func LoadVersion1(dir string, td spiffeid.TrustDomain, bundle x509bundle.Source, now time.Time) (*Contents, []string, error) {
	w, err := loadOldWorkloads(dir, td, bundle, now)
	if err != nil {
		return nil, nil, err
	}
	return w.Contents, w.dropped, nil
}

// loadOldWorkloads reads the workloads file of version 1 of dir, written
// for trust domain td, as parseOldWorkloads does, and checks its SVIDs
// with bundle at now (see checkOldSVID). It returns ErrNotFound when
// there is none, and refuses one that the agent's uid does not own or
// that others may read or change, as Load does.
func loadOldWorkloads(dir string, td spiffeid.TrustDomain, bundle x509bundle.Source, now time.Time) (*oldWorkloads, error) {
	w, err := readWorkloadsFile(dir, datadir.OldWorkloadsFile, "the saved workload SVIDs of version 1", func(r io.Reader) (*oldWorkloads, error) {
		return parseOldWorkloads(r, td)
	})
	if err != nil {
		return nil, err
	}
	w.checkSVIDs(bundle, now)
	return w, nil
}

// parseOldWorkloads reads a workloads file of version 1 of trust domain td
// from r. It refuses the file whole when it does not hold together (see
// the version's doc), and leaves out the entries the registry would not
// take now. It does not check the SVIDs.
func parseOldWorkloads(r io.Reader, td spiffeid.TrustDomain) (*oldWorkloads, error) {
	br := bufio.NewReaderSize(r, maxWorkloadsRecord)
	h := sha256.New()
	w := &oldWorkloads{Contents: &Contents{}}
	var cas [][]byte
	for n := 0; ; n++ {
		raw, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("line %d is longer than %d bytes", n+1, maxWorkloadsRecord)
		case errors.Is(err, io.EOF):
			return nil, errors.New("the file ends before its end line: it was cut short")
		case err != nil:
			return nil, err
		}
		var l oldWorkloadsLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if n == 0 {
			if err := w.oldHeader(l, td); err != nil {
				return nil, err
			}
			h.Write(raw)
			continue
		}
		if l.End != nil {
			if l.End.Lines != n || l.End.SHA256 != hex.EncodeToString(h.Sum(nil)) {
				return nil, errors.New("its digest does not match its content: it was changed or damaged")
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return nil, errors.New("it goes on after its end line")
			}
			return w, nil
		}
		h.Write(raw)
		switch {
		case l.CA != nil:
			cas = append(cas, l.CA)
		case l.Federated != nil:
			ftd, err := spiffeid.TrustDomainFromString(l.TrustDomain)
			var b *spiffebundle.Bundle
			if err == nil {
				b, err = spiffebundle.Parse(ftd, l.Federated)
			}
			if err != nil {
				// Entries that federate with it are served without it.
				w.dropped = append(w.dropped, fmt.Sprintf("line %d: the federated bundle of %q: %v", n+1, l.TrustDomain, err))
				continue
			}
			w.Federated = append(w.Federated, b)
		case l.Entry != nil:
			e, err := l.Entry.entry()
			if err != nil {
				w.dropped = append(w.dropped, fmt.Sprintf("line %d: entry %q: %v", n+1, l.Entry.ID, err))
				continue
			}
			w.Entries = append(w.Entries, e)
			if l.SVID == nil {
				continue
			}
			s := issuer.SavedX509SVID{EntryID: e.ID, Revision: e.Revision, Certificates: [][]byte{l.SVID.Leaf},
				PrivateKey: l.SVID.Key, NotBefore: l.SVID.NotBefore, NotAfter: l.SVID.NotAfter, MintedAt: l.SVID.MintedAt}
			if len(l.SVID.CAs) > x509svid.MaxChainLength-1 {
				return nil, fmt.Errorf("line %d: the SVID names %d CA certificates", n+1, len(l.SVID.CAs))
			}
			for _, k := range l.SVID.CAs {
				if k < 0 || k >= len(cas) {
					return nil, fmt.Errorf("line %d: the SVID names CA %d of %d", n+1, k, len(cas))
				}
				s.Certificates = append(s.Certificates, cas[k])
			}
			w.SVIDs = append(w.SVIDs, s)
		default:
			return nil, fmt.Errorf("line %d: not a line of the file", n+1)
		}
	}
}

// oldHeader checks the header of a workloads file of version 1 of trust
// domain td, and records its agent.
func (w *oldWorkloads) oldHeader(l oldWorkloadsLine, td spiffeid.TrustDomain) error {
	switch {
	case l.Format != workloadsFormat:
		return errors.New("not a file of saved workload SVIDs")
	case l.Version != oldWorkloadsVersion:
		return fmt.Errorf("version %d in a file of version %d", l.Version, oldWorkloadsVersion)
	case l.TrustDomain != td.Name():
		return fmt.Errorf("saved for trust domain %q, not %q", l.TrustDomain, td.Name())
	}
	var err error
	if w.Agent, err = spiffeid.FromString(l.Agent); err != nil {
		return fmt.Errorf("the agent: %w", err)
	}
	return nil
}

// entry returns the registry.Entry of e, if the registry would take it.
func (e *oldEntry) entry() (registry.Entry, error) {
	out := registry.Entry{ID: e.ID, X509SVIDTTL: time.Duration(e.X509SVIDTTL), JWTSVIDTTL: time.Duration(e.JWTSVIDTTL),
		DNSNames: e.DNSNames, Hint: e.Hint, Revision: e.Revision, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if e.ExpiresAt != 0 {
		if e.ExpiresAt < registry.MinExpiry.Unix() || e.ExpiresAt > registry.MaxExpiry.Unix() {
			return out, fmt.Errorf("expiry %d out of range", e.ExpiresAt)
		}
		out.ExpiresAt = time.Unix(e.ExpiresAt, 0).UTC()
	}
	var err error
	if out.SPIFFEID, err = spiffeid.FromString(e.SPIFFEID); err != nil {
		return out, err
	}
	if out.ParentID, err = spiffeid.FromString(e.ParentID); err != nil {
		return out, err
	}
	if len(e.Selectors) > registry.MaxSelectors {
		return out, fmt.Errorf("%d selectors", len(e.Selectors))
	}
	out.Selectors = make([]attest.Selector, len(e.Selectors))
	for k, sel := range e.Selectors {
		if out.Selectors[k], err = attest.ParseSelector(sel); err != nil {
			return out, err
		}
	}
	if len(e.FederatesWith) > registry.MaxFederatesWith {
		return out, fmt.Errorf("federates with %d trust domains", len(e.FederatesWith))
	}
	for _, name := range e.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return out, err
		}
		out.FederatesWith = append(out.FederatesWith, td)
	}
	switch {
	case !registry.ValidEntryID(out.ID):
		return out, errors.New("an invalid entry ID")
	case out.Revision < 1:
		return out, errors.New("no revision")
	}
	return out, out.Validate()
}

// checkSVIDs leaves out the SVIDs that checkOldSVID refuses, and gives the
// others the dates of their leaf.
func (w *oldWorkloads) checkSVIDs(bundle x509bundle.Source, now time.Time) {
	byID := make(map[string]registry.Entry, len(w.Entries))
	for _, e := range w.Entries {
		byID[e.ID] = e
	}
	kept := w.SVIDs[:0]
	for _, s := range w.SVIDs {
		if err := checkOldSVID(byID[s.EntryID], &s, bundle, now); err != nil {
			w.dropped = append(w.dropped, fmt.Sprintf("the X509-SVID of entry %q: %v", s.EntryID, err))
			continue
		}
		kept = append(kept, s)
	}
	clear(w.SVIDs[len(kept):]) // no copy of a key left behind
	w.SVIDs = kept
}

// checkOldSVID checks s, an SVID of entry e from a file of version 1, in
// full: its leaf names e's SPIFFE ID, is no CA and certifies its key; its
// dates, when the file has them, are the leaf's (else they are set to
// them); and, unless it has expired (which issuer.Restore counts and
// leaves out), its chain verifies with bundle at now.
func checkOldSVID(e registry.Entry, s *issuer.SavedX509SVID, bundle x509bundle.Source, now time.Time) error {
	if len(s.Certificates) < 2 {
		return errors.New("it has no CA certificate")
	}
	certs := make([]*x509.Certificate, len(s.Certificates))
	for k, der := range s.Certificates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", k, err)
		}
		certs[k] = c
	}
	leaf := certs[0]
	id, err := x509svid.IDFromCert(leaf)
	switch {
	case err != nil:
		return err
	case id != e.SPIFFEID:
		return fmt.Errorf("its leaf names %s, not %s", id, e.SPIFFEID)
	case leaf.IsCA:
		return errors.New("its leaf is a CA certificate")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(s.PrivateKey)
	if err != nil {
		return errors.New("its key does not parse") // no detail of a secret
	}
	key, ok := parsed.(crypto.Signer)
	if !ok || !publickey.Equal(leaf.PublicKey, key.Public()) {
		return errors.New("its key is not the leaf's")
	}
	if !s.NotBefore.IsZero() || !s.NotAfter.IsZero() {
		if !s.NotBefore.Equal(leaf.NotBefore) || !s.NotAfter.Equal(leaf.NotAfter) {
			return errors.New("its dates are not the leaf's")
		}
	}
	s.NotBefore, s.NotAfter = leaf.NotBefore, leaf.NotAfter
	if !now.Before(leaf.NotAfter) {
		return nil // expired: issuer.Restore counts it
	}
	if _, _, err := x509svid.Verify(certs, bundle, x509svid.WithTime(now)); err != nil {
		return fmt.Errorf("its chain does not verify with the bundle: %w", err)
	}
	return nil
}
