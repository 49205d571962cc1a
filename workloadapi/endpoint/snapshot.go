package endpoint

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// MaxHintLength is the longest hint a Snapshot may carry (WAPI rule 8: no
// more than 1024 bytes).
const MaxHintLength = 1024

// A Snapshot is everything one caller may see at one moment: its SVIDs and
// the bundles of its own and of federated trust domains.
//
// The server encodes a Snapshot once, the first time it needs it, and shares
// the encoded responses among every stream that sees the same Snapshot, so
// that a rotation reaching many callers costs one encoding. A Snapshot must
// therefore not be modified, nor the SVIDs and bundles it points to, once it
// has been handed to the server; to change a view, build a new Snapshot. It
// must not be copied either (use the pointer).
type Snapshot struct {
	// TrustDomain is the caller's own trust domain: the endpoint's. Its
	// bundle must be in Bundles. Every other bundle is federated.
	// Required.
	TrustDomain spiffeid.TrustDomain

	// X509SVIDs are the caller's X509-SVIDs, the default identity first
	// (WAPI rule 9). Each needs its private key, and the bundle of its trust
	// domain in Bundles. Empty (and RawX509SVIDs too) means FetchX509SVID
	// answers PermissionDenied. The IDs also name the identities the caller
	// may ask JWT-SVIDs for, if the Handler mints them.
	X509SVIDs []*x509svid.SVID

	// RawX509SVIDs are the caller's X509-SVIDs in the form the Workload
	// API carries them (see RawX509SVID), for a Handler that keeps them so;
	// otherwise as X509SVIDs. A Snapshot holds one or the other, not both.
	RawX509SVIDs []*RawX509SVID

	// Bundles holds one bundle per trust domain the caller trusts: its own
	// and federated ones. Its X.509 authorities are served to X.509 RPCs,
	// its JWT authorities to FetchJWTBundles and ValidateJWTSVID, its WIT
	// authorities to FetchWITBundles.
	Bundles []*spiffebundle.Bundle

	// WITSVIDs are the caller's WIT-SVIDs, the default first; served only
	// when Config.WIT is set.
	WITSVIDs []WITSVID

	once sync.Once
	enc  *encoded
}

// RawX509SVID is an X509-SVID in the form the Workload API carries it: DER
// certificates and a PKCS#8 private key. A Handler that holds many SVIDs
// (package issuer keeps one per registration entry) keeps them in this form,
// a fraction of the memory of parsed certificates and keys, and hands them
// to the server in Snapshot.RawX509SVIDs. The server sends them as they are:
// it checks that every part is there, but does not parse them, so the
// Handler vouches that the leaf names ID and certifies the key (package
// issuer checked both when the SVID was minted). Like a Snapshot, a
// RawX509SVID must not be modified once handed to the server; its slices
// may be shared (a CA certificate, by every SVID it signed).
type RawX509SVID struct {
	// ID is the SPIFFE ID the leaf certificate names.
	ID spiffeid.ID

	// Certificates holds the DER of each certificate of the chain, the
	// leaf first.
	Certificates [][]byte

	// PrivateKey is the leaf's private key, PKCS#8 DER.
	PrivateKey []byte

	// Hint is the optional operator-chosen label (WAPI rule 8).
	Hint string
}

// encoded is the Snapshot as the server sends it, computed once.
type encoded struct {
	err         error
	x509SVID    []byte // nil: no X509-SVID
	x509Bundles []byte // nil: no X.509 authority at all
	jwtBundles  []byte // nil: no JWT authority at all
	witSVID     []byte // nil: no WIT-SVID
	witBundles  []byte // nil: no WIT authority at all
	jwtSet      *jwtbundle.Set
}

var deterministic = proto.MarshalOptions{Deterministic: true}

// Validate checks that the snapshot is complete and consistent: a trust
// domain with its bundle, one bundle per trust domain, every X509-SVID with
// its key, a leaf naming its ID and a bundle for its trust domain, hints
// unique and at most MaxHintLength bytes long. The server answers Internal
// (and logs the error) for a snapshot that fails it; MemoryHandler.Set
// rejects one.
func (s *Snapshot) Validate() error {
	return s.encoded().err
}

// x509IDs yields the ID and hint of each X509-SVID, in order.
func (s *Snapshot) x509IDs() iter.Seq2[spiffeid.ID, string] {
	return func(yield func(spiffeid.ID, string) bool) {
		for _, svid := range s.X509SVIDs {
			if svid != nil && !yield(svid.ID, svid.Hint) {
				return
			}
		}
		for _, svid := range s.RawX509SVIDs {
			if svid != nil && !yield(svid.ID, svid.Hint) {
				return
			}
		}
	}
}

func (s *Snapshot) encoded() *encoded {
	s.once.Do(func() {
		e, err := s.encode()
		if err != nil {
			e = &encoded{err: fmt.Errorf("endpoint: invalid snapshot: %w", err)}
		}
		s.enc = e
	})
	return s.enc
}

func (s *Snapshot) encode() (*encoded, error) {
	if s.TrustDomain.IsZero() {
		return nil, errors.New("trust domain is missing")
	}
	byTD := make(map[spiffeid.TrustDomain]*spiffebundle.Bundle, len(s.Bundles))
	for _, b := range s.Bundles {
		if b == nil {
			return nil, errors.New("nil bundle")
		}
		td := b.TrustDomain()
		if _, dup := byTD[td]; dup {
			return nil, fmt.Errorf("two bundles for trust domain %q", td)
		}
		byTD[td] = b
	}
	if byTD[s.TrustDomain] == nil {
		return nil, fmt.Errorf("no bundle for the own trust domain %q", s.TrustDomain)
	}

	e := &encoded{jwtSet: jwtbundle.NewSet()}
	x509Bundles := make(map[string][]byte)
	federated := make(map[string][]byte)
	jwtBundles := make(map[string][]byte)
	witBundles := make(map[string]string)
	for td, b := range byTD {
		if der := concatDER(b.X509Authorities()); der != nil {
			x509Bundles[td.IDString()] = der
			if td != s.TrustDomain {
				federated[td.IDString()] = der
			}
		}
		if len(b.JWTAuthorities()) > 0 {
			jb := b.JWTBundle()
			doc, err := jb.Marshal()
			if err != nil {
				return nil, fmt.Errorf("JWT bundle of %q: %w", td, err)
			}
			jwtBundles[td.IDString()] = doc
			e.jwtSet.Add(jb)
		}
		if len(b.WITAuthorities()) > 0 {
			doc, err := b.WITBundle().Marshal()
			if err != nil {
				return nil, fmt.Errorf("WIT bundle of %q: %w", td, err)
			}
			witBundles[td.IDString()] = string(doc)
		}
	}

	if len(s.X509SVIDs) > 0 && len(s.RawX509SVIDs) > 0 {
		return nil, errors.New("both X509SVIDs and RawX509SVIDs are set")
	}
	hints := make(map[string]bool)
	resp := &workloadpb.X509SVIDResponse{FederatedBundles: federated}
	for i, svid := range s.X509SVIDs {
		m, err := encodeX509SVID(svid, x509Bundles)
		if err != nil {
			return nil, fmt.Errorf("X509-SVID %d: %w", i, err)
		}
		if err := checkHint(hints, m.Hint); err != nil {
			return nil, fmt.Errorf("X509-SVID %q: %w", m.SpiffeId, err)
		}
		resp.Svids = append(resp.Svids, m)
	}
	for i, svid := range s.RawX509SVIDs {
		m, err := encodeRawX509SVID(svid, x509Bundles)
		if err != nil {
			return nil, fmt.Errorf("X509-SVID %d: %w", i, err)
		}
		if err := checkHint(hints, m.Hint); err != nil {
			return nil, fmt.Errorf("X509-SVID %q: %w", m.SpiffeId, err)
		}
		resp.Svids = append(resp.Svids, m)
	}
	var err error
	if len(resp.Svids) > 0 {
		if e.x509SVID, err = deterministic.Marshal(resp); err != nil {
			return nil, err
		}
	}
	if len(x509Bundles) > 0 {
		if e.x509Bundles, err = deterministic.Marshal(&workloadpb.X509BundlesResponse{Bundles: x509Bundles}); err != nil {
			return nil, err
		}
	}
	if len(jwtBundles) > 0 {
		if e.jwtBundles, err = deterministic.Marshal(&workloadpb.JWTBundlesResponse{Bundles: jwtBundles}); err != nil {
			return nil, err
		}
	}
	if len(witBundles) > 0 {
		if e.witBundles, err = deterministic.Marshal(&workloadpb.WITBundlesResponse{Bundles: witBundles}); err != nil {
			return nil, err
		}
	}
	clear(hints)
	for i, w := range s.WITSVIDs {
		if w.ID.IsZero() || w.Token == "" || w.Key == "" {
			return nil, fmt.Errorf("WIT-SVID %d: ID, token and key are required", i)
		}
		if err := checkHint(hints, w.Hint); err != nil {
			return nil, fmt.Errorf("WIT-SVID %q: %w", w.ID, err)
		}
	}
	if e.witSVID, err = encodeWITSVIDs(s.WITSVIDs, spiffeid.ID{}); err != nil {
		return nil, err
	}
	return e, nil
}

func encodeX509SVID(svid *x509svid.SVID, x509Bundles map[string][]byte) (*workloadpb.X509SVID, error) {
	if svid == nil || svid.ID.IsZero() || len(svid.Certificates) == 0 || svid.PrivateKey == nil {
		return nil, errors.New("ID, certificates and private key are required")
	}
	leafID, err := x509svid.IDFromCert(svid.Certificates[0])
	if err != nil {
		return nil, err
	}
	if leafID != svid.ID {
		// go-spiffe clients read the ID from the certificate and the
		// bundle's trust domain from spiffe_id: keep them equal.
		return nil, fmt.Errorf("leaf certificate names %q", leafID)
	}
	key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, err
	}
	bundle := x509Bundles[svid.ID.TrustDomain().IDString()]
	if bundle == nil {
		return nil, fmt.Errorf("no X.509 bundle for trust domain %q", svid.ID.TrustDomain())
	}
	return &workloadpb.X509SVID{
		SpiffeId:    svid.ID.String(),
		X509Svid:    concatDER(svid.Certificates),
		X509SvidKey: key,
		Bundle:      bundle,
		Hint:        svid.Hint,
	}, nil
}

func encodeRawX509SVID(svid *RawX509SVID, x509Bundles map[string][]byte) (*workloadpb.X509SVID, error) {
	if svid == nil || svid.ID.IsZero() || len(svid.Certificates) == 0 || len(svid.PrivateKey) == 0 {
		return nil, errors.New("ID, certificates and private key are required")
	}
	n := 0
	for _, c := range svid.Certificates {
		if len(c) == 0 {
			return nil, errors.New("empty certificate")
		}
		n += len(c)
	}
	bundle := x509Bundles[svid.ID.TrustDomain().IDString()]
	if bundle == nil {
		return nil, fmt.Errorf("no X.509 bundle for trust domain %q", svid.ID.TrustDomain())
	}
	chain := make([]byte, 0, n)
	for _, c := range svid.Certificates {
		chain = append(chain, c...)
	}
	return &workloadpb.X509SVID{
		SpiffeId:    svid.ID.String(),
		X509Svid:    chain,
		X509SvidKey: svid.PrivateKey,
		Bundle:      bundle,
		Hint:        svid.Hint,
	}, nil
}

// encodeWITSVIDs encodes the WIT-SVIDs, only the one for id when id is not
// zero. It returns nil when none is left.
func encodeWITSVIDs(svids []WITSVID, id spiffeid.ID) ([]byte, error) {
	resp := &workloadpb.WITSVIDResponse{}
	for _, w := range svids {
		if !id.IsZero() && w.ID != id {
			continue
		}
		resp.Svids = append(resp.Svids, &workloadpb.WITSVID{
			SpiffeId:   w.ID.String(),
			WitSvid:    w.Token,
			WitSvidKey: w.Key,
			Hint:       w.Hint,
		})
	}
	if len(resp.Svids) == 0 {
		return nil, nil
	}
	return deterministic.Marshal(resp)
}

func checkHint(seen map[string]bool, hint string) error {
	if hint == "" {
		return nil
	}
	if len(hint) > MaxHintLength {
		return fmt.Errorf("hint longer than %d bytes", MaxHintLength)
	}
	if seen[hint] {
		return fmt.Errorf("duplicate hint %q", hint)
	}
	seen[hint] = true
	return nil
}

func concatDER(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		buf.Write(c.Raw)
	}
	return buf.Bytes()
}
