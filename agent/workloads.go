package agent

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The workloads file keeps what the agent needs to serve its workloads
// again after a restart with every server away: the entries it was
// authorized for, the X509-SVID it held for each (with its private key:
// the file is 0600, like the agent key), and the federated bundles. The
// trust domain's bundle is bundle.json, and the agent's own SVID beside it.
//
// It is JSON lines, written in one pass without holding the file in
// memory: a header, then one line per CA certificate (which the SVIDs name
// by number, so that each is written once), per federated bundle and per
// entry (with its SVID, if it has one), then an end line with the number
// of lines before it and the SHA-256 of their bytes. A file whose digest
// or line count does not match, or that does not parse, is refused whole.
const (
	workloadsFile    = "workload-svids.jsonl"
	workloadsFormat  = "spiffekit-agent-workloads"
	workloadsVersion = 1
	// maxWorkloadsLine bounds one line: an entry at every limit of
	// registry.Entry with its SVID is well under it.
	maxWorkloadsLine = 1 << 20
	// maxWorkloadsFile bounds the file: about 1.2 KB per entry.
	maxWorkloadsFile = 1 << 30
)

// workloadsLine is one line of the workloads file; exactly one of its
// parts is set, except in the header.
type workloadsLine struct {
	Format      string `json:"format,omitempty"`
	Version     int    `json:"version,omitempty"`
	TrustDomain string `json:"trust_domain,omitempty"`
	Agent       string `json:"agent,omitempty"`

	CA        []byte          `json:"ca,omitempty"`
	Federated json.RawMessage `json:"federated,omitempty"` // a bundle document of TrustDomain
	Entry     *savedEntry     `json:"entry,omitempty"`
	SVID      *savedSVID      `json:"svid,omitempty"` // with Entry
	End       *workloadsEnd   `json:"end,omitempty"`
}

// savedEntry is a registry.Entry in the workloads file.
type savedEntry struct {
	ID            string    `json:"id"`
	SPIFFEID      string    `json:"spiffe_id"`
	ParentID      string    `json:"parent_id"`
	Selectors     []string  `json:"selectors"`
	X509SVIDTTL   int64     `json:"x509_svid_ttl_ns,omitempty"`
	JWTSVIDTTL    int64     `json:"jwt_svid_ttl_ns,omitempty"`
	DNSNames      []string  `json:"dns_names,omitempty"`
	FederatesWith []string  `json:"federates_with,omitempty"`
	Hint          string    `json:"hint,omitempty"`
	Revision      int64     `json:"revision"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// savedSVID is the X509-SVID of an entry in the workloads file.
type savedSVID struct {
	Leaf      []byte    `json:"leaf"`
	CAs       []int     `json:"cas"` // the CA lines, by number from 0, in chain order
	Key       []byte    `json:"key"` // PKCS#8
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	MintedAt  time.Time `json:"minted_at"`
}

type workloadsEnd struct {
	Lines  int    `json:"lines"`
	SHA256 string `json:"sha256"`
}

// savedWorkloads is what the workloads file holds.
type savedWorkloads struct {
	agent     spiffeid.ID
	entries   []registry.Entry
	svids     []issuer.SavedX509SVID
	federated []*spiffebundle.Bundle
}

func entryToSaved(e registry.Entry) *savedEntry {
	s := &savedEntry{ID: e.ID, SPIFFEID: e.SPIFFEID.String(), ParentID: e.ParentID.String(),
		X509SVIDTTL: int64(e.X509SVIDTTL), JWTSVIDTTL: int64(e.JWTSVIDTTL), DNSNames: e.DNSNames, Hint: e.Hint,
		Revision: e.Revision, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	s.Selectors = make([]string, len(e.Selectors))
	for k, sel := range e.Selectors {
		s.Selectors[k] = sel.String()
	}
	for _, td := range e.FederatesWith {
		s.FederatesWith = append(s.FederatesWith, td.Name())
	}
	return s
}

func (s *savedEntry) entry() (registry.Entry, error) {
	e := registry.Entry{ID: s.ID, X509SVIDTTL: time.Duration(s.X509SVIDTTL), JWTSVIDTTL: time.Duration(s.JWTSVIDTTL),
		DNSNames: s.DNSNames, Hint: s.Hint, Revision: s.Revision, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
	var err error
	if e.SPIFFEID, err = spiffeid.FromString(s.SPIFFEID); err != nil {
		return e, err
	}
	if e.ParentID, err = spiffeid.FromString(s.ParentID); err != nil {
		return e, err
	}
	if len(s.Selectors) > registry.MaxSelectors {
		return e, fmt.Errorf("%d selectors", len(s.Selectors))
	}
	e.Selectors = make([]attest.Selector, len(s.Selectors))
	for k, sel := range s.Selectors {
		if e.Selectors[k], err = attest.ParseSelector(sel); err != nil {
			return e, err
		}
	}
	if len(s.FederatesWith) > registry.MaxFederatesWith {
		return e, fmt.Errorf("federates with %d trust domains", len(s.FederatesWith))
	}
	for _, name := range s.FederatesWith {
		td, err := spiffeid.TrustDomainFromString(name)
		if err != nil {
			return e, err
		}
		e.FederatesWith = append(e.FederatesWith, td)
	}
	if !registry.ValidEntryID(e.ID) {
		return e, errors.New("an invalid entry ID")
	}
	if e.Revision < 1 {
		return e, errors.New("no revision")
	}
	return e, e.Validate()
}

// hashingWriter counts and hashes what goes through it.
type hashingWriter struct {
	w     io.Writer
	h     hash.Hash
	lines int
	buf   bytes.Buffer
}

// line writes v as one JSON line.
func (hw *hashingWriter) line(v any) error {
	hw.buf.Reset()
	if err := json.NewEncoder(&hw.buf).Encode(v); err != nil { // Encode ends it with '\n'
		return err
	}
	hw.h.Write(hw.buf.Bytes())
	hw.lines++
	_, err := hw.w.Write(hw.buf.Bytes())
	return err
}

// saveWorkloads replaces the workloads file of dir (mode 0600, atomically:
// a crash leaves the old file or the new one) with the entries, the SVIDs
// held for them and the federated bundles of the agent agentID of td. It
// returns the size of the file. An SVID whose entry is not among entries
// is left out.
func saveWorkloads(dir string, td spiffeid.TrustDomain, agentID spiffeid.ID, entries []registry.Entry,
	svids []issuer.SavedX509SVID, federated []*spiffebundle.Bundle) (int64, error) {
	byEntry := make(map[string]*issuer.SavedX509SVID, len(svids))
	for k := range svids {
		byEntry[svids[k].EntryID] = &svids[k]
	}
	var size int64
	err := atomicfile.WriteFunc(filepath.Join(dir, workloadsFile), 0o600, func(w io.Writer) error {
		hw := &hashingWriter{w: w, h: sha256.New()}
		if err := hw.line(workloadsLine{Format: workloadsFormat, Version: workloadsVersion,
			TrustDomain: td.Name(), Agent: agentID.String()}); err != nil {
			return err
		}
		cas := make(map[string]int)
		for _, e := range entries {
			s := byEntry[e.ID]
			if s == nil {
				continue
			}
			for _, der := range s.Certificates[1:] {
				if _, ok := cas[string(der)]; !ok {
					cas[string(der)] = len(cas)
					if err := hw.line(workloadsLine{CA: der}); err != nil {
						return err
					}
				}
			}
		}
		for _, b := range federated {
			doc, err := b.Marshal()
			if err != nil {
				return fmt.Errorf("encoding the bundle of %s: %w", b.TrustDomain().Name(), err)
			}
			if err := hw.line(workloadsLine{TrustDomain: b.TrustDomain().Name(), Federated: doc}); err != nil {
				return err
			}
		}
		for _, e := range entries {
			l := workloadsLine{Entry: entryToSaved(e)}
			if s := byEntry[e.ID]; s != nil && s.Revision == e.Revision && len(s.Certificates) >= 2 {
				ss := &savedSVID{Leaf: s.Certificates[0], Key: s.PrivateKey, NotBefore: s.NotBefore, NotAfter: s.NotAfter, MintedAt: s.MintedAt}
				for _, der := range s.Certificates[1:] {
					ss.CAs = append(ss.CAs, cas[string(der)])
				}
				l.SVID = ss
			}
			if err := hw.line(l); err != nil {
				return err
			}
		}
		end := workloadsEnd{Lines: hw.lines, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
		if err := hw.line(workloadsLine{End: &end}); err != nil {
			return err
		}
		size = int64(hw.buf.Len()) // the end line; the rest is counted below
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("agent: saving the workload SVIDs: %w", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, workloadsFile)); err == nil {
		size = fi.Size()
	}
	return size, nil
}

// errNoWorkloads means the data directory holds no workloads file.
var errNoWorkloads = errors.New("agent: no saved workload SVIDs")

// loadWorkloads reads the workloads file of dir, written for trust domain
// td. A file that the agent's uid does not own, that others may read or
// change, that does not parse, or whose digest does not match is refused
// whole; its errors name no secret. It checks neither the SVIDs nor the
// entries against each other (see issuer.Restore), nor the agent.
func loadWorkloads(dir string, td spiffeid.TrustDomain) (*savedWorkloads, error) {
	path := filepath.Join(dir, workloadsFile)
	f, err := atomicfile.OpenChecked(path, checkStateFile(path, os.Geteuid(), true))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoWorkloads
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w, err := parseWorkloads(io.LimitReader(f, maxWorkloadsFile), td)
	if err != nil {
		return nil, fmt.Errorf("agent: the saved workload SVIDs in %s: %w", path, err)
	}
	return w, nil
}

// parseWorkloads reads a workloads file of trust domain td from r.
func parseWorkloads(r io.Reader, td spiffeid.TrustDomain) (*savedWorkloads, error) {
	br := bufio.NewReaderSize(r, maxWorkloadsLine)
	h := sha256.New()
	w := &savedWorkloads{}
	var cas [][]byte
	for n := 0; ; n++ {
		raw, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("line %d is longer than %d bytes", n+1, maxWorkloadsLine)
		case errors.Is(err, io.EOF):
			return nil, errors.New("the file ends before its end line: it was cut short")
		case err != nil:
			return nil, err
		}
		var l workloadsLine
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if n == 0 {
			switch {
			case l.Format != workloadsFormat:
				return nil, errors.New("not a file of saved workload SVIDs")
			case l.Version != workloadsVersion:
				return nil, fmt.Errorf("version %d; this agent reads version %d", l.Version, workloadsVersion)
			case l.TrustDomain != td.Name():
				return nil, fmt.Errorf("saved for trust domain %q, not %q", l.TrustDomain, td.Name())
			}
			if w.agent, err = spiffeid.FromString(l.Agent); err != nil {
				return nil, fmt.Errorf("the agent: %w", err)
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
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			b, err := spiffebundle.Parse(ftd, l.Federated)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n+1, err)
			}
			w.federated = append(w.federated, b)
		case l.Entry != nil:
			e, err := l.Entry.entry()
			if err != nil {
				return nil, fmt.Errorf("line %d: entry %q: %w", n+1, l.Entry.ID, err)
			}
			w.entries = append(w.entries, e)
			if l.SVID == nil {
				continue
			}
			s := issuer.SavedX509SVID{EntryID: e.ID, Revision: e.Revision, Certificates: [][]byte{l.SVID.Leaf},
				PrivateKey: l.SVID.Key, NotBefore: l.SVID.NotBefore, NotAfter: l.SVID.NotAfter, MintedAt: l.SVID.MintedAt}
			for _, k := range l.SVID.CAs {
				if k < 0 || k >= len(cas) {
					return nil, fmt.Errorf("line %d: the SVID names CA %d of %d", n+1, k, len(cas))
				}
				s.Certificates = append(s.Certificates, cas[k])
			}
			w.svids = append(w.svids, s)
		default:
			return nil, fmt.Errorf("line %d: not a line of the file", n+1)
		}
	}
}

// federatedBundles returns the federated bundles, sorted by trust domain.
func (t *trust) federatedBundles() []*spiffebundle.Bundle {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*spiffebundle.Bundle, 0, len(t.federated))
	for _, b := range t.federated {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *spiffebundle.Bundle) int {
		return strings.Compare(a.TrustDomain().Name(), b.TrustDomain().Name())
	})
	return out
}
