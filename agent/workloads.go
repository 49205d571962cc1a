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
	"runtime"
	"slices"
	"strings"
	"sync"
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
	ExpiresAt     int64     `json:"expires_at,omitempty"` // seconds since the epoch; 0: none
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
	if !e.ExpiresAt.IsZero() {
		s.ExpiresAt = e.ExpiresAt.Unix()
	}
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
	if s.ExpiresAt != 0 {
		if s.ExpiresAt < registry.MinExpiry.Unix() || s.ExpiresAt > registry.MaxExpiry.Unix() {
			return e, fmt.Errorf("expiry %d out of range", s.ExpiresAt)
		}
		e.ExpiresAt = time.Unix(s.ExpiresAt, 0).UTC()
	}
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

// parseWorkloads reads a workloads file of trust domain td from r. The
// lines are read and hashed in order, and decoded on every core: ten
// thousand entries with their SVIDs are some twelve megabytes of JSON.
func parseWorkloads(r io.Reader, td spiffeid.TrustDomain) (*savedWorkloads, error) {
	br := bufio.NewReaderSize(r, maxWorkloadsLine)
	h := sha256.New()
	w := &savedWorkloads{}
	var (
		lines []*parsedLine // in order, after the header
		chunk []*parsedLine // to decode, by the workers
		work  = make(chan []*parsedLine, 4)
		errs  = make(chan error, 1)
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for ls := range work {
				for _, l := range ls {
					if err := l.decode(); err != nil {
						fail(err)
					}
				}
			}
		})
	}
	done := func() error {
		close(work)
		wg.Wait()
		select {
		case err := <-errs:
			return err
		default:
			return nil
		}
	}
	err := func() error {
		for n := 0; ; n++ {
			raw, err := br.ReadSlice('\n')
			switch {
			case errors.Is(err, bufio.ErrBufferFull):
				return fmt.Errorf("line %d is longer than %d bytes", n+1, maxWorkloadsLine)
			case errors.Is(err, io.EOF):
				return errors.New("the file ends before its end line: it was cut short")
			case err != nil:
				return err
			}
			if n == 0 {
				if err := w.header(raw, td); err != nil {
					return err
				}
				h.Write(raw)
				continue
			}
			if bytes.HasPrefix(raw, []byte(`{"end":`)) {
				var l workloadsLine
				if err := json.Unmarshal(raw, &l); err != nil || l.End == nil {
					return fmt.Errorf("line %d: not an end line", n+1)
				}
				if l.End.Lines != n || l.End.SHA256 != hex.EncodeToString(h.Sum(nil)) {
					return errors.New("its digest does not match its content: it was changed or damaged")
				}
				if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
					return errors.New("it goes on after its end line")
				}
				if len(chunk) > 0 {
					work <- chunk
				}
				return nil
			}
			h.Write(raw)
			l := &parsedLine{n: n, raw: bytes.Clone(raw)}
			lines = append(lines, l)
			if chunk = append(chunk, l); len(chunk) == 64 {
				work <- chunk
				chunk = nil
			}
		}
	}()
	if err2 := done(); err == nil {
		err = err2
	}
	if err != nil {
		return nil, err
	}
	// In order: the SVIDs name the CAs by their rank in the file.
	var cas [][]byte
	for _, l := range lines {
		switch {
		case l.ca != nil:
			cas = append(cas, l.ca)
		case l.federated != nil:
			w.federated = append(w.federated, l.federated)
		case l.entry != nil:
			w.entries = append(w.entries, *l.entry)
			if l.svid == nil {
				continue
			}
			for _, k := range l.cas {
				if k < 0 || k >= len(cas) {
					return nil, fmt.Errorf("line %d: the SVID names CA %d of %d", l.n+1, k, len(cas))
				}
				l.svid.Certificates = append(l.svid.Certificates, cas[k])
			}
			w.svids = append(w.svids, *l.svid)
		}
	}
	return w, nil
}

// header checks the first line of a workloads file of trust domain td,
// and records its agent.
func (w *savedWorkloads) header(raw []byte, td spiffeid.TrustDomain) error {
	var l workloadsLine
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	switch {
	case l.Format != workloadsFormat:
		return errors.New("not a file of saved workload SVIDs")
	case l.Version != workloadsVersion:
		return fmt.Errorf("version %d; this agent reads version %d", l.Version, workloadsVersion)
	case l.TrustDomain != td.Name():
		return fmt.Errorf("saved for trust domain %q, not %q", l.TrustDomain, td.Name())
	}
	var err error
	if w.agent, err = spiffeid.FromString(l.Agent); err != nil {
		return fmt.Errorf("the agent: %w", err)
	}
	return nil
}

// parsedLine is one line of a workloads file after the header, and what
// it holds once decoded.
type parsedLine struct {
	n         int // from 0
	raw       []byte
	ca        []byte
	federated *spiffebundle.Bundle
	entry     *registry.Entry
	svid      *issuer.SavedX509SVID // its leaf alone; the CAs of cas follow
	cas       []int
}

// decode decodes l and lets go of its bytes.
func (l *parsedLine) decode() error {
	n, raw := l.n, l.raw
	l.raw = nil
	var wl workloadsLine
	if err := json.Unmarshal(raw, &wl); err != nil {
		return fmt.Errorf("line %d: %w", n+1, err)
	}
	switch {
	case wl.CA != nil:
		l.ca = wl.CA
	case wl.Federated != nil:
		ftd, err := spiffeid.TrustDomainFromString(wl.TrustDomain)
		if err != nil {
			return fmt.Errorf("line %d: %w", n+1, err)
		}
		b, err := spiffebundle.Parse(ftd, wl.Federated)
		if err != nil {
			return fmt.Errorf("line %d: %w", n+1, err)
		}
		l.federated = b
	case wl.Entry != nil:
		e, err := wl.Entry.entry()
		if err != nil {
			return fmt.Errorf("line %d: entry %q: %w", n+1, wl.Entry.ID, err)
		}
		l.entry = &e
		if wl.SVID != nil {
			l.svid = &issuer.SavedX509SVID{EntryID: e.ID, Revision: e.Revision, Certificates: [][]byte{wl.SVID.Leaf},
				PrivateKey: wl.SVID.Key, NotBefore: wl.SVID.NotBefore, NotAfter: wl.SVID.NotAfter, MintedAt: wl.SVID.MintedAt}
			l.cas = wl.SVID.CAs
		}
	default:
		return fmt.Errorf("line %d: not a line of the file", n+1)
	}
	return nil
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
