package x509store

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"iter"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// SVID is the X509-SVID of one entry, with what the issuer needs to know
// of it to serve and renew it.
type SVID struct {
	// Revision is that of the entry it was minted for.
	Revision int64
	// SVID is what the Workload API sends.
	SVID *endpoint.RawX509SVID
	// RefreshAt is when it is due: half its life.
	RefreshAt time.Time
	// NotBefore and NotAfter are the leaf's.
	NotBefore, NotAfter time.Time
	// MintedAt is the wall clock (no monotonic reading) when it came.
	MintedAt time.Time
	// CAGen is the issuer's count of the changes of its CAs when its mint
	// started.
	CAGen uint64
}

// Usable reports whether m may be served for entry e: minted for its
// current revision, not expired, and not minted in what is now the
// future. A usable SVID may still be due for re-minting; it is served
// meanwhile. A nil m is not usable.
//
// An SVID is from the future when the clock was stepped back since it came
// (now is before MintedAt, a wall-clock reading) and it is not valid yet
// (now is before its NotBefore): its peers would refuse it, maybe for
// hours. An SVID that is not valid yet only because its signer's clock is
// ahead of ours stays usable: minting again would not help.
func (m *SVID) Usable(e registry.Entry, now time.Time) bool {
	if m == nil || m.Revision != e.Revision || !now.Before(m.NotAfter) {
		return false
	}
	return !now.Before(m.MintedAt) || !now.Before(m.NotBefore)
}

// Raw turns a checked chain for entry e and its key into what an issuer
// keeps and serves: the DER of each certificate (the leaf's copied out of
// whatever larger buffer it was parsed from) and the key as PKCS#8.
func Raw(e registry.Entry, key crypto.Signer, certs []*x509.Certificate) (*endpoint.RawX509SVID, error) {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	chain := make([][]byte, len(certs))
	chain[0] = bytes.Clone(certs[0].Raw)
	for k, c := range certs[1:] {
		chain[k+1] = c.Raw // replaced by the issuer's copy when cached
	}
	return &endpoint.RawX509SVID{ID: e.SPIFFEID, Certificates: chain, PrivateKey: pkcs8, Hint: e.Hint}, nil
}

// caCopy is the one copy of a CA certificate's DER the store keeps, with
// the number of SVIDs whose chains hold it.
type caCopy struct {
	der  []byte
	refs int
}

// Store holds the SVIDs by entry ID. The zero value is an empty store. It
// is not safe for concurrent use: the issuer's lock guards it.
type Store struct {
	svids   map[string]*SVID
	cas     map[string]*caCopy // by DER
	version uint64
}

// Get returns the SVID of entry id, or nil.
func (s *Store) Get(id string) *SVID { return s.svids[id] }

// Len returns how many SVIDs the store holds.
func (s *Store) Len() int { return len(s.svids) }

// Version returns a number that changes whenever the SVIDs held do.
func (s *Store) Version() uint64 { return s.version }

// All returns the SVIDs by entry ID, in no order. The loop may Drop the
// SVID it is given.
func (s *Store) All() iter.Seq2[string, *SVID] {
	return func(yield func(string, *SVID) bool) {
		for id, m := range s.svids {
			if !yield(id, m) {
				return
			}
		}
	}
}

// Set holds m as the SVID of entry id, in place of the one held before, if
// any. The CA certificates of m's chain are replaced by the store's copy
// of the same DER, so that the SVIDs a CA signed share one copy of it,
// kept while an SVID holds it.
func (s *Store) Set(id string, m *SVID) {
	if s.svids == nil {
		s.svids, s.cas = make(map[string]*SVID), make(map[string]*caCopy)
	}
	for k, der := range m.SVID.Certificates[1:] {
		c := s.cas[string(der)]
		if c == nil {
			// Not the Signer's buffer, which may hold more.
			c = &caCopy{der: bytes.Clone(der)}
			s.cas[string(c.der)] = c
		}
		c.refs++
		m.SVID.Certificates[k+1] = c.der
	}
	s.Drop(id)
	s.svids[id] = m
	s.version++
}

// Drop forgets the SVID of entry id, if any, and the CA certificates no
// other SVID holds.
func (s *Store) Drop(id string) {
	m := s.svids[id]
	if m == nil {
		return
	}
	delete(s.svids, id)
	s.version++
	for _, der := range m.SVID.Certificates[1:] {
		if c := s.cas[string(der)]; c != nil {
			if c.refs--; c.refs == 0 {
				delete(s.cas, string(der))
			}
		}
	}
}

// CARefs returns, by DER, how many SVIDs hold each CA certificate the
// store keeps a copy of.
func (s *Store) CARefs() map[string]int {
	out := make(map[string]int, len(s.cas))
	for der, c := range s.cas {
		out[der] = c.refs
	}
	return out
}
