package workloadfile

import (
	"bufio"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
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
	"unicode"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// The workloads file keeps what the agent needs to serve its workloads
// again after a restart with every server away: the entries it was
// authorized for, the X509-SVID it held for each (with its private key:
// the file is 0600, like the agent key), the WIT-SVIDs it held (with
// theirs), the federated bundles, and the X.509 CAs and JWT and WIT keys
// the server named as tainted, so that none of what they signed is served
// again before a server says otherwise. The trust domain's bundle is
// bundle.json, and the agent's own SVID beside it.
//
// It is written in one pass without holding the file in memory, and read
// so: a JSON header line (format, version, trust domain, agent), then
// binary records, each a kind byte, the length of its body (a uvarint) and
// the body. One record per tainted CA, JWT key and WIT key, per CA
// certificate (which the SVIDs name by number, so that each is written
// once), per federated bundle and per entry (with its SVID, if it has
// one), then one per WIT-SVID (of an entry before it), then an end record
// with the number of records before it (the header counted) and the
// SHA-256 of every byte before it. A file whose digest or count does not
// match, or that does not parse, is refused whole.
//
// Version 3 added the WIT-SVID records, and version 4 the taint records; a
// file is written in the oldest version that holds what it keeps (version
// 2 without WIT-SVIDs and taints), which the agents of the releases
// before read too. The agent reads versions 2 to 4. (Version 1, workload-svids.jsonl, was JSON lines
// throughout, whose decoding took most of a restart: the agent reads it
// once, when there is no file of a later version, and removes it once it
// has written one; see version1.go.)
const (
	workloadsFormat  = "spiffekit-agent-workloads"
	workloadsVersion = 4
	// witsVersion is the version of a file with WIT-SVIDs and without
	// taints.
	witsVersion = 3
	// noWITsVersion is the version of a file without WIT-SVIDs and
	// taints, the oldest the agent reads.
	noWITsVersion = 2
	// maxWorkloadsRecord bounds one record, and the header line: an entry
	// at every limit of registry.Entry with its SVID is well under it.
	maxWorkloadsRecord = 1 << 20
	// maxWorkloadsFile bounds the file: about 0.9 KB per entry.
	maxWorkloadsFile = 1 << 30
)

// The kinds of records of the workloads file.
const (
	recordCA        = 'c' // the DER of a CA certificate
	recordFederated = 'f' // a trust domain name, then its bundle document
	recordEntry     = 'e' // an entry, with its SVID if it has one (see appendEntry)
	recordWIT       = 'w' // a WIT-SVID of an entry (see appendWIT); version 3
	recordTaintedCA = 't' // the DER of a tainted X.509 CA certificate; version 4
	recordTaintedJ  = 'j' // the kid of a tainted JWT key; version 4
	recordTaintedW  = 'k' // the kid of a tainted WIT key; version 4
	recordEnd       = 'z' // the number of records before it, then their SHA-256
)

// The flags of an entry record.
const (
	flagDownstream = 1 << iota
	flagSVID
)

// workloadsHeader is the first line of the workloads file.
type workloadsHeader struct {
	Format      string `json:"format"`
	Version     int    `json:"version"`
	TrustDomain string `json:"trust_domain"`
	Agent       string `json:"agent"`
}

// Contents is what a workloads file holds.
type Contents struct {
	// Agent is the agent that saved the file.
	Agent spiffeid.ID
	// Entries are the entries the agent was authorized for.
	Entries []registry.Entry
	// SVIDs are the X509-SVIDs the agent held for Entries. Save leaves out
	// those of an entry not among Entries, or of another revision of it.
	SVIDs []issuer.SavedX509SVID
	// WITs are the WIT-SVIDs the agent held for Entries, left out as
	// SVIDs are.
	WITs []issuer.SavedWITSVID
	// Federated are the federated bundles.
	Federated []*spiffebundle.Bundle
	// Taints are the authorities the server last named as tainted.
	Taints Taints
}

// Taints is what the agent knows of the trust domain's tainted
// authorities: the X.509 CAs, and the kids of the JWT and WIT keys.
type Taints struct {
	CAs      []*x509.Certificate
	JWT, WIT []string
}

// Empty reports whether l names no tainted CA or key.
func (l Taints) Empty() bool { return len(l.CAs) == 0 && len(l.JWT) == 0 && len(l.WIT) == 0 }

// recordWriter writes the records of a workloads file, counting and
// hashing them.
type recordWriter struct {
	w       io.Writer
	h       hash.Hash
	records int
	head    []byte
	body    []byte // reused for each record's body
}

// line writes the header line.
func (rw *recordWriter) line(v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	rw.h.Write(raw)
	rw.records++
	_, err = rw.w.Write(raw)
	return err
}

// record writes one record of kind with body.
func (rw *recordWriter) record(kind byte, body []byte) error {
	rw.head = binary.AppendUvarint(append(rw.head[:0], kind), uint64(len(body)))
	if kind != recordEnd {
		rw.h.Write(rw.head)
		rw.h.Write(body)
		rw.records++
	}
	if _, err := rw.w.Write(rw.head); err != nil {
		return err
	}
	_, err := rw.w.Write(body)
	return err
}

func appendBytes(b, v []byte) []byte { return append(binary.AppendUvarint(b, uint64(len(v))), v...) }

func appendString(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendTime(b []byte, t time.Time) ([]byte, error) {
	raw, err := t.MarshalBinary()
	if err != nil {
		return b, err
	}
	return appendBytes(b, raw), nil
}

// appendEntry appends the body of e's record to b, with s, its SVID, if
// not nil; cas numbers the CA certificates already written.
func appendEntry(b []byte, e registry.Entry, s *issuer.SavedX509SVID, cas map[string]int) ([]byte, error) {
	b = appendString(b, e.ID)
	b = appendString(b, e.SPIFFEID.String())
	b = appendString(b, e.ParentID.String())
	b = binary.AppendUvarint(b, uint64(len(e.Selectors)))
	for _, sel := range e.Selectors {
		b = appendString(appendString(b, sel.Type), sel.Value)
	}
	b = binary.AppendVarint(b, int64(e.X509SVIDTTL))
	b = binary.AppendVarint(b, int64(e.JWTSVIDTTL))
	b = binary.AppendUvarint(b, uint64(len(e.DNSNames)))
	for _, n := range e.DNSNames {
		b = appendString(b, n)
	}
	b = binary.AppendUvarint(b, uint64(len(e.FederatesWith)))
	for _, td := range e.FederatesWith {
		b = appendString(b, td.Name())
	}
	b = appendString(b, e.Hint)
	var expires int64
	if !e.ExpiresAt.IsZero() {
		expires = e.ExpiresAt.Unix()
	}
	b = binary.AppendVarint(b, expires)
	b = binary.AppendVarint(b, e.Revision)
	var err error
	if b, err = appendTime(b, e.CreatedAt); err != nil {
		return b, err
	}
	if b, err = appendTime(b, e.UpdatedAt); err != nil {
		return b, err
	}
	var flags byte
	if e.Downstream {
		flags |= flagDownstream
	}
	if s != nil {
		flags |= flagSVID
	}
	b = append(b, flags)
	if s == nil {
		return b, nil
	}
	b = appendBytes(b, s.Certificates[0])
	b = binary.AppendUvarint(b, uint64(len(s.Certificates)-1))
	for _, der := range s.Certificates[1:] {
		b = binary.AppendUvarint(b, uint64(cas[string(der)]))
	}
	b = appendBytes(b, s.PrivateKey)
	for _, t := range []time.Time{s.NotBefore, s.NotAfter, s.MintedAt} {
		if b, err = appendTime(b, t); err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendWIT appends the body of the record of s, a WIT-SVID, to b.
func appendWIT(b []byte, s *issuer.SavedWITSVID) ([]byte, error) {
	b = appendString(b, s.EntryID)
	b = binary.AppendVarint(b, s.Revision)
	b = appendString(b, s.Token)
	b = appendBytes(b, s.PrivateKey)
	return appendTime(b, s.MintedAt)
}

// Save replaces the workloads file of the data directory dir (mode 0600,
// atomically: a crash leaves the old file or the new one) with c, saved by
// an agent of trust domain td, and removes a file of version 1. It returns
// the size of the file.
func Save(dir string, td spiffeid.TrustDomain, c *Contents) (int64, error) {
	err := atomicfile.WriteFunc(filepath.Join(dir, datadir.WorkloadsFile), 0o600, func(w io.Writer) error {
		return writeWorkloads(w, td, c.Agent, c.Entries, c.SVIDs, c.Federated, c.WITs, c.Taints)
	})
	if err != nil {
		return 0, fmt.Errorf("agent: saving the workload SVIDs: %w", err)
	}
	// Only now that the new file is durably written: a crash before
	// leaves the old one, which the agent reads again.
	switch err := os.Remove(filepath.Join(dir, datadir.OldWorkloadsFile)); {
	case err == nil:
		if err := atomicfile.SyncDir(dir); err != nil {
			return 0, fmt.Errorf("agent: removing the saved workload SVIDs of version 1: %w", err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("agent: removing the saved workload SVIDs of version 1: %w", err)
	}
	fi, err := os.Stat(filepath.Join(dir, datadir.WorkloadsFile))
	if err != nil {
		return 0, fmt.Errorf("agent: saving the workload SVIDs: %w", err)
	}
	return fi.Size(), nil
}

// writeWorkloads writes a workloads file to w. An SVID or a WIT-SVID whose
// entry is not among entries, or that was minted for another revision of
// it, is left out.
func writeWorkloads(w io.Writer, td spiffeid.TrustDomain, agentID spiffeid.ID, entries []registry.Entry,
	svids []issuer.SavedX509SVID, federated []*spiffebundle.Bundle, wits []issuer.SavedWITSVID, taints Taints) error {
	byEntry := make(map[string]*issuer.SavedX509SVID, len(svids))
	for k := range svids {
		byEntry[svids[k].EntryID] = &svids[k]
	}
	version := noWITsVersion
	var keptWITs []*issuer.SavedWITSVID
	if len(wits) > 0 {
		revisions := make(map[string]int64, len(entries))
		for _, e := range entries {
			revisions[e.ID] = e.Revision
		}
		for k := range wits {
			if rev, ok := revisions[wits[k].EntryID]; ok && rev == wits[k].Revision {
				keptWITs = append(keptWITs, &wits[k])
			}
		}
		if len(keptWITs) > 0 {
			version = witsVersion
		}
	}
	if !taints.Empty() {
		version = workloadsVersion
	}
	rw := &recordWriter{w: w, h: sha256.New()}
	if err := rw.line(workloadsHeader{Format: workloadsFormat, Version: version,
		TrustDomain: td.Name(), Agent: agentID.String()}); err != nil {
		return err
	}
	for _, c := range taints.CAs {
		if err := rw.record(recordTaintedCA, c.Raw); err != nil {
			return err
		}
	}
	for _, kids := range []struct {
		kind byte
		kids []string
	}{{recordTaintedJ, taints.JWT}, {recordTaintedW, taints.WIT}} {
		for _, kid := range kids.kids {
			if err := rw.record(kids.kind, append(rw.body[:0], kid...)); err != nil {
				return err
			}
		}
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
				if err := rw.record(recordCA, der); err != nil {
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
		if err := rw.record(recordFederated, append(appendString(rw.body[:0], b.TrustDomain().Name()), doc...)); err != nil {
			return err
		}
	}
	for _, e := range entries {
		s := byEntry[e.ID]
		if s != nil && (s.Revision != e.Revision || len(s.Certificates) < 2) {
			s = nil
		}
		var err error
		if rw.body, err = appendEntry(rw.body[:0], e, s, cas); err != nil {
			return err
		}
		if err := rw.record(recordEntry, rw.body); err != nil {
			return err
		}
	}
	for _, s := range keptWITs {
		var err error
		if rw.body, err = appendWIT(rw.body[:0], s); err != nil {
			return err
		}
		if err := rw.record(recordWIT, rw.body); err != nil {
			return err
		}
	}
	return rw.record(recordEnd, rw.h.Sum(binary.AppendUvarint(nil, uint64(rw.records))))
}

// ErrNotFound means the data directory holds no workloads file: Load and
// LoadVersion1 return it.
var ErrNotFound = errors.New("agent: no saved workload SVIDs")

// Load reads the workloads file of the data directory dir, written for
// trust domain td. It returns ErrNotFound when there is none. A file that
// the agent's uid does not own, that others may read or change, that does
// not parse, or whose digest does not match is refused whole; its errors
// name no secret. It checks neither the SVIDs nor the
// entries against each other (see issuer.Restore), nor the agent.
func Load(dir string, td spiffeid.TrustDomain) (*Contents, error) {
	return readWorkloadsFile(dir, datadir.WorkloadsFile, "the saved workload SVIDs", func(r io.Reader) (*Contents, error) {
		return parseWorkloads(r, td)
	})
}

// readWorkloadsFile reads the workloads file name of dir (of any version)
// with parse, given at most maxWorkloadsFile bytes of it. It returns
// ErrNotFound when there is none, and refuses one that the agent's uid
// does not own or that others may read or change; an error of parse is
// said to be of what, the file's content.
func readWorkloadsFile[W any](dir, name, what string, parse func(io.Reader) (W, error)) (W, error) {
	var none W
	path := filepath.Join(dir, name)
	f, err := atomicfile.OpenChecked(path, datadir.CheckFile(path, os.Geteuid(), true))
	if errors.Is(err, fs.ErrNotExist) {
		return none, ErrNotFound
	}
	if err != nil {
		return none, err
	}
	defer f.Close()
	w, err := parse(io.LimitReader(f, maxWorkloadsFile))
	if err != nil {
		return none, fmt.Errorf("agent: %s in %s: %w", what, path, err)
	}
	return w, nil
}

// parseWorkloads reads a workloads file of trust domain td from r, and
// decodes each record as it comes, into memory of its own (no record's
// buffer is kept).
func parseWorkloads(r io.Reader, td spiffeid.TrustDomain) (*Contents, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	h := sha256.New()
	raw, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errors.New("the header: too long")
	case errors.Is(err, io.EOF):
		return nil, errors.New("the file ends before its end record: it was cut short")
	case err != nil:
		return nil, err
	}
	w := &Contents{}
	version, err := w.header(raw, td)
	if err != nil {
		return nil, err
	}
	h.Write(raw)
	d := &recordDecoder{}
	var (
		cas  [][]byte
		head [1 + binary.MaxVarintLen64]byte
		body []byte
		// revisions holds the revision of each entry read, by ID, from
		// the first WIT-SVID on.
		revisions map[string]int64
	)
	for n := 1; ; n++ {
		kind, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file ends before its end record: it was cut short")
		} else if err != nil {
			return nil, err
		}
		size, err := binary.ReadUvarint(br)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("the file ends before its end record: it was cut short")
		} else if err != nil {
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
		if size > maxWorkloadsRecord {
			return nil, fmt.Errorf("record %d is longer than %d bytes", n, maxWorkloadsRecord)
		}
		if cap(body) < int(size) {
			body = make([]byte, size)
		}
		body = body[:size]
		if _, err := io.ReadFull(br, body); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errors.New("the file ends before its end record: it was cut short")
		} else if err != nil {
			return nil, err
		}
		if kind == recordEnd {
			d.reset(body)
			count := d.uvarint()
			if d.err != nil || count != uint64(n) || len(d.b) != sha256.Size || string(d.b) != string(h.Sum(nil)) {
				return nil, errors.New("its digest does not match its content: it was changed or damaged")
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return nil, errors.New("it goes on after its end record")
			}
			return w, nil
		}
		h.Write(binary.AppendUvarint(append(head[:0], kind), size))
		h.Write(body)
		d.reset(body)
		switch kind {
		case recordCA:
			if len(body) == 0 {
				return nil, fmt.Errorf("record %d: an empty CA certificate", n)
			}
			cas = append(cas, slices.Clone(body))
		case recordFederated:
			b, err := d.federated()
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", n, err)
			}
			w.Federated = append(w.Federated, b)
		case recordEntry:
			e, s, err := d.entry(cas)
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", n, err)
			}
			w.Entries = append(w.Entries, e)
			if s != nil {
				w.SVIDs = append(w.SVIDs, *s)
			}
			if revisions != nil {
				revisions[e.ID] = e.Revision
			}
		case recordTaintedCA, recordTaintedJ, recordTaintedW:
			if version < workloadsVersion {
				return nil, fmt.Errorf("record %d: a taint in a file of version %d", n, version)
			}
			if err := w.Taints.add(kind, body); err != nil {
				return nil, fmt.Errorf("record %d: %w", n, err)
			}
		case recordWIT:
			if version < witsVersion {
				return nil, fmt.Errorf("record %d: a WIT-SVID in a file of version %d", n, version)
			}
			s, err := d.wit()
			if err != nil {
				return nil, fmt.Errorf("record %d: %w", n, err)
			}
			if revisions == nil {
				revisions = make(map[string]int64, len(w.Entries))
				for _, e := range w.Entries {
					revisions[e.ID] = e.Revision
				}
			}
			if rev, ok := revisions[s.EntryID]; !ok || rev != s.Revision {
				return nil, fmt.Errorf("record %d: a WIT-SVID of entry %q at revision %d, which the file does not hold", n, s.EntryID, s.Revision)
			}
			w.WITs = append(w.WITs, s)
		default:
			return nil, fmt.Errorf("record %d: not a record of the file", n)
		}
	}
}

// header checks the first line of a workloads file of trust domain td,
// records its agent, and returns its version.
func (w *Contents) header(raw []byte, td spiffeid.TrustDomain) (int, error) {
	var l workloadsHeader
	if err := json.Unmarshal(raw, &l); err != nil {
		return 0, fmt.Errorf("the header: %w", err)
	}
	switch {
	case l.Format != workloadsFormat:
		return 0, errors.New("not a file of saved workload SVIDs")
	case l.Version < noWITsVersion || l.Version > workloadsVersion:
		return 0, fmt.Errorf("version %d; this agent reads versions %d to %d", l.Version, noWITsVersion, workloadsVersion)
	case l.TrustDomain != td.Name():
		return 0, fmt.Errorf("saved for trust domain %q, not %q", l.TrustDomain, td.Name())
	}
	var err error
	if w.Agent, err = spiffeid.FromString(l.Agent); err != nil {
		return 0, fmt.Errorf("the agent: %w", err)
	}
	return l.Version, nil
}

// add records the taint of a record of kind with body, checked as the
// agent checks what a server sends (see nodeapi.Update).
func (l *Taints) add(kind byte, body []byte) error {
	if kind == recordTaintedCA {
		// A copy: the certificate keeps slices of its input (Raw), and
		// body is reused for the records that follow.
		c, err := x509.ParseCertificate(slices.Clone(body))
		if err != nil {
			return fmt.Errorf("a tainted CA: %w", err)
		}
		l.CAs = append(l.CAs, c)
		return nil
	}
	kid := string(body)
	if kid == "" || len(kid) > registry.MaxAuthorityIDLen || !utf8.ValidString(kid) ||
		strings.IndexFunc(kid, unicode.IsControl) >= 0 {
		return errors.New("an invalid kid of a tainted key")
	}
	if kind == recordTaintedJ {
		l.JWT = append(l.JWT, kid)
	} else {
		l.WIT = append(l.WIT, kid)
	}
	return nil
}

// errCutRecord fails the decoding of a record that ends too soon.
var errCutRecord = errors.New("the record is cut short")

// recordDecoder decodes the body of a record; its first failure sticks.
type recordDecoder struct {
	b   []byte
	err error
	// parent is the last parent ID decoded: the entries of an agent
	// share a few, and are written by ID, so that most follow one like
	// their own.
	parent spiffeid.ID
}

func (d *recordDecoder) reset(b []byte) { d.b, d.err = b, nil }

func (d *recordDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *recordDecoder) uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail(errCutRecord)
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *recordDecoder) varint() int64 {
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail(errCutRecord)
		return 0
	}
	d.b = d.b[k:]
	return v
}

// bytes returns the next length-prefixed bytes, in the record's buffer.
func (d *recordDecoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errCutRecord)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) str() string { return string(d.bytes()) }

func (d *recordDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail(errCutRecord)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *recordDecoder) time() time.Time {
	var t time.Time
	if raw := d.bytes(); d.err == nil {
		if err := t.UnmarshalBinary(raw); err != nil {
			d.fail(fmt.Errorf("a time: %w", err))
		}
	}
	return t
}

// count returns the next count, failing above limit.
func (d *recordDecoder) count(what string, limit int) int {
	n := d.uvarint()
	if n > uint64(limit) {
		d.fail(fmt.Errorf("%d %s", n, what))
		return 0
	}
	return int(n)
}

// end fails a record with bytes left.
func (d *recordDecoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		return errors.New("the record goes on after its last field")
	}
	return d.err
}

// federated decodes a federated bundle record.
func (d *recordDecoder) federated() (*spiffebundle.Bundle, error) {
	name := d.str()
	if d.err != nil {
		return nil, d.err
	}
	ftd, err := spiffeid.TrustDomainFromString(name)
	if err != nil {
		return nil, err
	}
	return spiffebundle.Parse(ftd, d.b)
}

// entry decodes an entry record, and its SVID, if it has one, which names
// its CA certificates by their rank among cas.
func (d *recordDecoder) entry(cas [][]byte) (registry.Entry, *issuer.SavedX509SVID, error) {
	var e registry.Entry
	e.ID = d.str()
	id, parent := d.bytes(), d.bytes()
	e.Selectors = make([]attest.Selector, d.count("selectors", registry.MaxSelectors))
	for k := range e.Selectors {
		e.Selectors[k] = attest.Selector{Type: d.str(), Value: d.str()}
	}
	e.X509SVIDTTL, e.JWTSVIDTTL = time.Duration(d.varint()), time.Duration(d.varint())
	if n := d.count("DNS names", registry.MaxDNSNames); n > 0 {
		e.DNSNames = make([]string, n)
		for k := range e.DNSNames {
			e.DNSNames[k] = d.str()
		}
	}
	fed := make([][]byte, d.count("federated trust domains", registry.MaxFederatesWith))
	for k := range fed {
		fed[k] = d.bytes()
	}
	e.Hint = d.str()
	expires := d.varint()
	e.Revision = d.varint()
	e.CreatedAt, e.UpdatedAt = d.time(), d.time()
	flags := d.byte()
	e.Downstream = flags&flagDownstream != 0
	var s *issuer.SavedX509SVID
	if flags&flagSVID != 0 {
		leaf := d.bytes()
		chain := make([]int, d.count("CA certificates", x509svid.MaxChainLength-1))
		for k := range chain {
			if c := d.uvarint(); c < uint64(len(cas)) {
				chain[k] = int(c)
			} else {
				d.fail(fmt.Errorf("the SVID names CA %d of %d", c, len(cas)))
			}
		}
		key := d.bytes()
		nb, na, minted := d.time(), d.time(), d.time()
		if d.err == nil {
			// One copy of the leaf and the key, in one allocation.
			mem := append(append(make([]byte, 0, len(leaf)+len(key)), leaf...), key...)
			s = &issuer.SavedX509SVID{EntryID: e.ID, Revision: e.Revision,
				Certificates: make([][]byte, 1, 1+len(chain)), PrivateKey: mem[len(leaf):],
				NotBefore: nb, NotAfter: na, MintedAt: minted}
			s.Certificates[0] = mem[:len(leaf):len(leaf)]
			for _, k := range chain {
				s.Certificates = append(s.Certificates, cas[k])
			}
		}
	}
	if flags&^(flagDownstream|flagSVID) != 0 {
		d.fail(fmt.Errorf("unknown flags %#x", flags))
	}
	if err := d.end(); err != nil {
		return e, nil, err
	}
	if expires != 0 {
		if expires < registry.MinExpiry.Unix() || expires > registry.MaxExpiry.Unix() {
			return e, nil, fmt.Errorf("entry %q: expiry %d out of range", e.ID, expires)
		}
		e.ExpiresAt = time.Unix(expires, 0).UTC()
	}
	var err error
	if e.SPIFFEID, err = spiffeid.FromString(string(id)); err != nil {
		return e, nil, fmt.Errorf("entry %q: %w", e.ID, err)
	}
	if string(parent) == d.parent.String() && !d.parent.IsZero() {
		e.ParentID = d.parent // shared, and parsed once
	} else if e.ParentID, err = spiffeid.FromString(string(parent)); err != nil {
		return e, nil, fmt.Errorf("entry %q: %w", e.ID, err)
	}
	d.parent = e.ParentID
	for _, name := range fed {
		td, err := spiffeid.TrustDomainFromString(string(name))
		if err != nil {
			return e, nil, fmt.Errorf("entry %q: %w", e.ID, err)
		}
		e.FederatesWith = append(e.FederatesWith, td)
	}
	switch {
	case !registry.ValidEntryID(e.ID):
		return e, nil, errors.New("an invalid entry ID")
	case e.Revision < 1:
		return e, nil, fmt.Errorf("entry %q: no revision", e.ID)
	}
	if err := e.Validate(); err != nil {
		return e, nil, fmt.Errorf("entry %q: %w", e.ID, err)
	}
	return e, s, nil
}

// wit decodes a WIT-SVID record. issuer.RestoreWITSVIDs checks what it
// holds.
func (d *recordDecoder) wit() (issuer.SavedWITSVID, error) {
	s := issuer.SavedWITSVID{EntryID: d.str(), Revision: d.varint(), Token: d.str()}
	s.PrivateKey = slices.Clone(d.bytes())
	s.MintedAt = d.time()
	if err := d.end(); err != nil {
		return s, err
	}
	switch {
	case s.Token == "" || len(s.Token) > issuer.MaxSavedWITLength:
		return s, fmt.Errorf("the WIT-SVID of entry %q: a token of %d bytes", s.EntryID, len(s.Token))
	case len(s.PrivateKey) == 0 || len(s.PrivateKey) > issuer.MaxSavedWITLength:
		return s, fmt.Errorf("the WIT-SVID of entry %q: a key of %d bytes", s.EntryID, len(s.PrivateKey))
	}
	return s, nil
}
