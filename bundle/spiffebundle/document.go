package spiffebundle

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// MaxBundleSize is the largest bundle document, in bytes, that [Parse],
	// [Read] and [Load] accept (1 MiB).
	MaxBundleSize = jwkutil.MaxDocumentSize

	// MaxKeys is the largest number of elements of "keys" that [Parse] accepts.
	MaxKeys = jwkutil.MaxKeys

	// maxRefreshHintSeconds keeps the hint representable as a time.Duration.
	maxRefreshHintSeconds = math.MaxInt64 / int64(time.Second)
)

// The values of the JWK "use" member (Bundle rule 13), compared
// case-sensitively.
const (
	x509SVIDUse = "x509-svid"
	jwtSVIDUse  = "jwt-svid"
	witSVIDUse  = "wit-svid"
)

// Load loads a bundle from a file holding a SPIFFE bundle document. Files
// larger than [MaxBundleSize] are rejected.
func Load(trustDomain spiffeid.TrustDomain, path string) (*Bundle, error) {
	b, err := jwkutil.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spiffebundle: unable to read SPIFFE bundle: %w", err)
	}
	return Parse(trustDomain, b)
}

// Read decodes a SPIFFE bundle document read from r. At most [MaxBundleSize]
// bytes are read; longer input is an error.
func Read(trustDomain spiffeid.TrustDomain, r io.Reader) (*Bundle, error) {
	b, err := jwkutil.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("spiffebundle: unable to read: %w", err)
	}
	return Parse(trustDomain, b)
}

// Parse parses a SPIFFE bundle document (a JWK Set, Bundle rules 7-17) for
// trustDomain, which the document itself does not name (Bundle rule 2).
//
// It accepts what go-spiffe accepts, with these differences, each required by
// the standard or a project decision:
//
//   - A key with a missing or unknown "kty" is ignored; go-spiffe fails the
//     document (Bundle rule 12).
//   - An "x509-svid" key without "x5c" or with an empty one is ignored, and
//     only x5c[0] of a longer chain is used; go-spiffe fails the document
//     (Bundle rule 15, X509 rule 25).
//   - A document is rejected when a key carries private members (d, p, q, dp,
//     dq, qi, oth, k) or has "kty" "oct" (Bundle rule 14), when two JWT or WIT
//     keys share a "kid" (Bundle rules 16-17; go-spiffe keeps the last one),
//     when "spiffe_refresh_hint" is not positive (Bundle rule 9; go-spiffe
//     accepts it), and when it is larger than [MaxBundleSize] bytes or has more
//     than [MaxKeys] keys.
//   - Member names are matched case-sensitively.
//
// As in go-spiffe, a missing "keys" member, a "jwt-svid" or "wit-svid" key
// without "kid", a negative or non-integer "spiffe_sequence" and a
// non-integer "spiffe_refresh_hint" fail the document; keys with an unknown or
// missing "use" are ignored (Bundle rule 13), and "kid" on an "x509-svid" key
// is tolerated. A key type go-jose cannot represent (such as an OKP key on
// X25519) is ignored. A document whose keys are all ignored parses into an
// empty bundle, which validates no SVID (Bundle rule 11).
func Parse(trustDomain spiffeid.TrustDomain, bundleBytes []byte) (*Bundle, error) {
	set, err := jwkutil.Decode(bundleBytes)
	if err != nil {
		return nil, fmt.Errorf("spiffebundle: %w", err)
	}
	// Bundle rule 7: "keys" MUST be present, even if empty.
	if !set.HasKeys {
		return nil, errors.New("spiffebundle: no authorities found")
	}
	b := New(trustDomain)
	if err := b.parseMembers(set.Members); err != nil {
		return nil, err
	}
	for _, e := range set.Keys {
		if err := b.addEntry(&e); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// parseMembers reads spiffe_sequence (Bundle rule 8) and spiffe_refresh_hint
// (Bundle rule 9). A null value counts as absent, as in go-spiffe.
func (b *Bundle) parseMembers(members map[string]json.RawMessage) error {
	if raw, ok := members["spiffe_sequence"]; ok && string(raw) != "null" {
		var seq uint64
		if err := json.Unmarshal(raw, &seq); err != nil {
			return fmt.Errorf("spiffebundle: unable to parse JWKS: invalid spiffe_sequence: %w", err)
		}
		b.sequence = &seq
	}
	if raw, ok := members["spiffe_refresh_hint"]; ok && string(raw) != "null" {
		var secs int64
		if err := json.Unmarshal(raw, &secs); err != nil {
			return fmt.Errorf("spiffebundle: unable to parse JWKS: invalid spiffe_refresh_hint: %w", err)
		}
		if secs <= 0 {
			return fmt.Errorf("spiffebundle: spiffe_refresh_hint must be positive; got %d", secs)
		}
		if secs > maxRefreshHintSeconds {
			return fmt.Errorf("spiffebundle: spiffe_refresh_hint is too large; got %d", secs)
		}
		hint := time.Duration(secs) * time.Second
		b.refreshHint = &hint
	}
	return nil
}

func (b *Bundle) addEntry(e *jwkutil.Entry) error {
	switch e.Use {
	case x509SVIDUse:
		// Bundle rule 15: an entry without a certificate is ignored; only
		// x5c[0] counts.
		if len(e.X5C) == 0 {
			return nil
		}
		cert, err := e.Certificate()
		if errors.Is(err, jwkutil.ErrUnsupportedKey) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("spiffebundle: error adding authority %d of JWKS: %w", e.Index, err)
		}
		b.x509.AddX509Authority(cert)
	case jwtSVIDUse, witSVIDUse:
		kind := ""
		if e.Use == witSVIDUse {
			kind = "WIT "
		}
		// Bundle rules 16-17.
		if e.KeyID == "" {
			return fmt.Errorf("spiffebundle: error adding %sauthority %d of JWKS: keyID cannot be empty", kind, e.Index)
		}
		// WIT rule 16: a kid names one key across the JWT and WIT authorities.
		if b.jwt.HasJWTAuthority(e.KeyID) || b.wit.HasWITAuthority(e.KeyID) {
			return fmt.Errorf("spiffebundle: error adding %sauthority %d of JWKS: duplicate key ID %q", kind, e.Index, e.KeyID)
		}
		key, err := e.PublicKey()
		if errors.Is(err, jwkutil.ErrUnsupportedKey) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("spiffebundle: error adding %sauthority %d of JWKS: %w", kind, e.Index, err)
		}
		if e.Use == jwtSVIDUse {
			err = b.jwt.AddJWTAuthority(e.KeyID, key)
		} else {
			err = b.wit.AddWITAuthority(e.KeyID, key)
		}
		if err != nil {
			return fmt.Errorf("spiffebundle: error adding %sauthority %d of JWKS: %w", kind, e.Index, err)
		}
	}
	// Bundle rule 13: any other "use", or none, is ignored.
	return nil
}

// document is the wire form written by Marshal.
type document struct {
	Keys        []json.RawMessage `json:"keys"`
	Sequence    *uint64           `json:"spiffe_sequence,omitempty"`
	RefreshHint *int64            `json:"spiffe_refresh_hint,omitempty"`
}

// Marshal encodes the bundle as a SPIFFE bundle document. The trust domain is
// not part of the document and must be conveyed separately (Bundle rule 2).
//
// Keys come in a fixed order: "x509-svid" keys in the bundle's order, then
// "jwt-svid" keys and "wit-svid" keys, each sorted by key ID. Every key has
// "use"; X.509 keys have "x5c" and no "kid". "spiffe_sequence" and
// "spiffe_refresh_hint" are written only when set, the hint rounded up to whole
// seconds. Marshal fails when the refresh hint is not positive, when a JWT and
// a WIT authority share a key ID, or when an authority is not a public key
// go-jose can encode; it never writes what [Parse] would reject.
func (b *Bundle) Marshal() ([]byte, error) {
	snap := b.Clone()
	doc := document{Keys: []json.RawMessage{}, Sequence: snap.sequence}
	if snap.refreshHint != nil {
		if *snap.refreshHint <= 0 {
			return nil, fmt.Errorf("spiffebundle: refresh hint must be positive; got %s", *snap.refreshHint)
		}
		// Rounded up without overflow: the largest hint Parse accepts is
		// within a second of the largest time.Duration.
		secs := int64(*snap.refreshHint / time.Second)
		if *snap.refreshHint%time.Second != 0 {
			secs++
		}
		doc.RefreshHint = &secs
	}
	for _, cert := range snap.x509.X509Authorities() {
		k, err := jwkutil.MarshalKey(nil, "", x509SVIDUse, cert)
		if err != nil {
			return nil, fmt.Errorf("spiffebundle: X.509 authority %q: %w", cert.Subject, err)
		}
		doc.Keys = append(doc.Keys, k)
	}
	jwtKeys := snap.jwt.JWTAuthorities()
	witKeys := snap.wit.WITAuthorities()
	for kid := range witKeys {
		if _, clash := jwtKeys[kid]; clash {
			return nil, fmt.Errorf("spiffebundle: key ID %q is used by both a JWT and a WIT authority", kid)
		}
	}
	for _, part := range []struct {
		use  string
		keys map[string]crypto.PublicKey
	}{{jwtSVIDUse, jwtKeys}, {witSVIDUse, witKeys}} {
		keys, err := jwkutil.MarshalKeys(part.keys, part.use)
		if err != nil {
			return nil, fmt.Errorf("spiffebundle: %w", err)
		}
		doc.Keys = append(doc.Keys, keys...)
	}
	return json.Marshal(doc)
}
