package sqlstore

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A decoder decodes stored entries, reusing its scratch space from one row
// to the next; it is not safe for concurrent use. Reading a million
// entries at start, encoding/json's reflection and the garbage it leaves
// (about 1 KB per entry) were most of the work, so the decoder first tries
// a parser of the form encode writes: the record's keys, each at most
// once, in any order; strings without escapes; integers; no null. Every
// string the entry keeps is cut from one allocation per row. A row of any
// other shape, and a row whose entry is invalid, goes to encoding/json
// (decodeInto), so that what is accepted, and the error of what is not,
// are exactly encoding/json's and [registry.Entry.Validate]'s;
// FuzzDecodeStored compares the two on arbitrary rows.
type decoder struct {
	rec     record            // for encoding/json
	f       fields            // the row being decoded
	types   []string          // selector types seen, shared by the entries
	parent  string            // the last parent ID
	parents map[string]string // parent IDs seen, shared by the entries
	sels    []selectorCut
	names   []span
}

// maxTypes bounds decoder.types: past it, a type is cut from its row.
const maxTypes = 16

// maxParents bounds decoder.parents: past it, it starts again.
const maxParents = 4096

// fields holds the parts of one row, as slices of it.
type fields struct {
	seen                                 uint16 // fieldBits of the keys read
	id, spiffeID, parentID, hint         []byte
	selectors, dnsNames, federatesWith   [][]byte
	createdAt, updatedAt                 []byte // the JSON string, quotes included
	x509TTL, jwtTTL, expiresAt, revision int64
	downstream                           bool
}

// The bits of fields.seen, one per key of record.
const (
	fID uint16 = 1 << iota
	fSPIFFEID
	fParentID
	fSelectors
	fX509TTL
	fJWTTTL
	fDNSNames
	fFederatesWith
	fHint
	fDownstream
	fExpiresAt
	fRevision
	fCreatedAt
	fUpdatedAt
)

// decode decodes one stored entry; the entry shares nothing with data or
// the decoder's scratch space.
func (d *decoder) decode(data []byte) (registry.Entry, error) {
	if e, ok := d.fast(data); ok {
		return e, nil
	}
	return decodeInto(&d.rec, data)
}

// fast decodes a row of the form encode writes, and reports whether it
// did: false for a row of another shape or an invalid entry, which
// decodeInto must decode (or refuse) instead.
func (d *decoder) fast(data []byte) (registry.Entry, bool) {
	f := &d.f
	*f = fields{selectors: f.selectors[:0], dnsNames: f.dnsNames[:0], federatesWith: f.federatesWith[:0]}
	if !f.parse(data) {
		return registry.Entry{}, false
	}
	return d.build()
}

// parse reads data into f, and reports whether it is of the form encode
// writes.
func (f *fields) parse(data []byte) bool {
	p := parser{b: data}
	p.space()
	if !p.take('{') {
		return false
	}
	p.space()
	if !p.take('}') {
		for {
			key, ok := p.str()
			if !ok {
				return false
			}
			p.space()
			if !p.take(':') {
				return false
			}
			p.space()
			bit := fieldBit(key)
			if bit == 0 || f.seen&bit != 0 {
				return false // an unknown key, a key of another case, or a key twice
			}
			f.seen |= bit
			switch bit {
			case fID:
				f.id, ok = p.str()
			case fSPIFFEID:
				f.spiffeID, ok = p.str()
			case fParentID:
				f.parentID, ok = p.str()
			case fHint:
				f.hint, ok = p.str()
			case fSelectors:
				f.selectors, ok = p.strs(f.selectors, registry.MaxSelectors)
			case fDNSNames:
				f.dnsNames, ok = p.strs(f.dnsNames, registry.MaxDNSNames)
			case fFederatesWith:
				f.federatesWith, ok = p.strs(f.federatesWith, registry.MaxFederatesWith)
			case fCreatedAt:
				f.createdAt, ok = p.quoted()
			case fUpdatedAt:
				f.updatedAt, ok = p.quoted()
			case fX509TTL:
				f.x509TTL, ok = p.int()
			case fJWTTTL:
				f.jwtTTL, ok = p.int()
			case fExpiresAt:
				f.expiresAt, ok = p.int()
			case fRevision:
				f.revision, ok = p.int()
			case fDownstream:
				f.downstream, ok = p.bool()
			}
			if !ok {
				return false
			}
			p.space()
			if p.take(',') {
				p.space()
				continue
			}
			if p.take('}') {
				break
			}
			return false
		}
	}
	p.space()
	return p.i == len(p.b)
}

// fieldBit returns the bit of a key of record, or 0. Keys match exactly:
// encoding/json would also take them in another case.
func fieldBit(key []byte) uint16 {
	switch string(key) {
	case "id":
		return fID
	case "spiffe_id":
		return fSPIFFEID
	case "parent_id":
		return fParentID
	case "selectors":
		return fSelectors
	case "x509_svid_ttl_ns":
		return fX509TTL
	case "jwt_svid_ttl_ns":
		return fJWTTTL
	case "dns_names":
		return fDNSNames
	case "federates_with":
		return fFederatesWith
	case "hint":
		return fHint
	case "downstream_ca":
		return fDownstream
	case "expires_at":
		return fExpiresAt
	case "revision":
		return fRevision
	case "created_at":
		return fCreatedAt
	case "updated_at":
		return fUpdatedAt
	}
	return 0
}

// build makes the entry of d.f, as decodeInto would make it of the same
// row, and reports whether it is valid.
func (d *decoder) build() (registry.Entry, bool) {
	f := &d.f
	e := registry.Entry{
		X509SVIDTTL: time.Duration(f.x509TTL),
		JWTSVIDTTL:  time.Duration(f.jwtTTL),
		Downstream:  f.downstream,
		Revision:    f.revision,
	}
	var created, updated time.Time
	if f.createdAt != nil && created.UnmarshalJSON(f.createdAt) != nil ||
		f.updatedAt != nil && updated.UnmarshalJSON(f.updatedAt) != nil {
		return registry.Entry{}, false
	}
	e.CreatedAt, e.UpdatedAt = created.UTC(), updated.UTC()
	if f.expiresAt != 0 {
		e.ExpiresAt = time.Unix(f.expiresAt, 0).UTC()
	}

	// One string holds the row's other strings: first their places in
	// it, then the string, then the pieces. The parent ID is shared by
	// many entries, kept beside the entry by an index, not in it.
	var err error
	if e.ParentID, err = spiffeid.FromString(d.parentID(f.parentID)); err != nil {
		return registry.Entry{}, false
	}
	n := len(f.id) + len(f.spiffeID) + len(f.hint)
	for _, s := range f.selectors {
		n += len(s)
	}
	for _, s := range f.dnsNames {
		n += len(s)
	}
	for _, s := range f.federatesWith {
		n += len(s)
	}
	var a arena
	a.b.Grow(n)
	id, sid, hint := a.put(f.id), a.put(f.spiffeID), a.put(f.hint)
	d.sels = d.sels[:0]
	for _, s := range f.selectors {
		i := bytes.IndexByte(s, ':')
		if i < 0 {
			return registry.Entry{}, false
		}
		c := selectorCut{value: a.put(s[i+1:])}
		if c.typ = d.selectorType(s[:i]); c.typ == "" {
			c.typSpan = a.put(s[:i])
		}
		d.sels = append(d.sels, c)
	}
	d.names = d.names[:0]
	for _, s := range f.dnsNames {
		d.names = append(d.names, a.put(s))
	}
	for _, s := range f.federatesWith {
		d.names = append(d.names, a.put(s))
	}
	all := a.b.String()
	str := func(s span) string { return all[s.start:s.end] }

	e.ID, e.Hint = str(id), str(hint)
	if e.SPIFFEID, err = spiffeid.FromString(str(sid)); err != nil {
		return registry.Entry{}, false
	}
	if len(d.sels) > 0 {
		e.Selectors = make([]attest.Selector, len(d.sels))
	}
	for i, c := range d.sels {
		s := attest.Selector{Type: c.typ, Value: str(c.value)}
		if s.Type == "" {
			s.Type = str(c.typSpan)
		}
		if s.Validate() != nil {
			return registry.Entry{}, false
		}
		e.Selectors[i] = s
	}
	names := d.names
	if len(f.dnsNames) > 0 {
		e.DNSNames = make([]string, len(f.dnsNames))
		for i := range e.DNSNames {
			e.DNSNames[i] = str(names[i])
		}
		names = names[len(f.dnsNames):]
	}
	if len(names) > 0 {
		e.FederatesWith = make([]spiffeid.TrustDomain, len(names))
		for i, s := range names {
			if e.FederatesWith[i], err = spiffeid.TrustDomainFromString(str(s)); err != nil {
				return registry.Entry{}, false
			}
		}
	}
	if e.Validate() != nil {
		return registry.Entry{}, false
	}
	return e, true
}

// span is the place of a string in an arena.
type span struct{ start, end int }

// arena collects strings into one allocation.
type arena struct{ b strings.Builder }

func (a *arena) put(b []byte) span {
	start := a.b.Len()
	a.b.Write(b)
	return span{start, a.b.Len()}
}

// selectorCut is the place of a selector in an arena: its type is typ,
// interned, or else at typSpan.
type selectorCut struct {
	typ            string
	typSpan, value span
}

// parentID returns the parent ID b, shared with the entries decoded before
// that have the same.
func (d *decoder) parentID(b []byte) string {
	if d.parent == string(b) {
		return d.parent // entries written together, read together
	}
	p, ok := d.parents[string(b)]
	if !ok {
		p = string(b)
		if d.parent != "" { // a second parent: worth a table
			if d.parents == nil || len(d.parents) == maxParents {
				d.parents = make(map[string]string)
			}
			d.parents[p] = p
		}
	}
	d.parent = p
	return p
}

// selectorType returns the selector type b, interned, or "" when too many
// types were seen already, or b is empty.
func (d *decoder) selectorType(b []byte) string {
	for _, t := range d.types {
		if t == string(b) {
			return t
		}
	}
	if len(d.types) == maxTypes || len(b) == 0 {
		return ""
	}
	t := string(b)
	d.types = append(d.types, t)
	return t
}

// parser reads JSON of the form encode writes; every method reports false
// for anything else.
type parser struct {
	b []byte
	i int
}

// space skips JSON white space.
func (p *parser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// take skips c if it comes next.
func (p *parser) take(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// quoted reads a string with no escapes, and returns it with its quotes.
// Its bytes are valid UTF-8, so that it means what encoding/json would
// read, which replaces invalid bytes.
func (p *parser) quoted() ([]byte, bool) {
	if !p.take('"') {
		return nil, false
	}
	start, high := p.i-1, false
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			s := p.b[start:p.i]
			return s, !high || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false // an escape, or invalid JSON
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return nil, false
}

// str reads a string with no escapes, and returns it without its quotes.
func (p *parser) str() ([]byte, bool) {
	s, ok := p.quoted()
	if !ok {
		return nil, false
	}
	return s[1 : len(s)-1], true
}

// strs reads an array of at most max strings, appended to out.
func (p *parser) strs(out [][]byte, max int) ([][]byte, bool) {
	if !p.take('[') {
		return out, false
	}
	p.space()
	if p.take(']') {
		return out, true
	}
	for {
		if len(out) == max {
			return out, false // more than an entry may have
		}
		s, ok := p.str()
		if !ok {
			return out, false
		}
		out = append(out, s)
		p.space()
		if p.take(']') {
			return out, true
		}
		if !p.take(',') {
			return out, false
		}
		p.space()
	}
}

// int reads an integer in JSON's form (no fraction or exponent) that fits
// an int64.
func (p *parser) int() (int64, bool) {
	neg := p.take('-')
	start := p.i
	var u uint64
	for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
		if u > (1<<63)/10 {
			return 0, false
		}
		u = u*10 + uint64(p.b[p.i]-'0')
		p.i++
	}
	switch {
	case p.i == start, p.b[start] == '0' && p.i > start+1: // no digits, or a leading zero
		return 0, false
	case neg && u > 1<<63, !neg && u > 1<<63-1:
		return 0, false
	case neg:
		return -int64(u), true // -(1<<63) wraps to itself, as it should
	}
	return int64(u), true
}

// bool reads true or false.
func (p *parser) bool() (bool, bool) {
	rest := p.b[p.i:]
	switch {
	case bytes.HasPrefix(rest, []byte("true")):
		p.i += 4
		return true, true
	case bytes.HasPrefix(rest, []byte("false")):
		p.i += 5
		return false, true
	}
	return false, false
}
