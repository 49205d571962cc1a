package sds

import (
	"cmp"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// SecretTypeURL is the type URL of SDS resources (envoy.extensions.
// transport_sockets.tls.v3.Secret).
const SecretTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// SPIFFEValidatorName is the name of Envoy's SPIFFE certificate validator,
// which a validation context built with the validator names.
const SPIFFEValidatorName = "envoy.tls.cert_validator.spiffe"

// kind is what a resource name designates.
type kind int

const (
	kindUnknown     kind = iota
	kindDefaultSVID      // the default name of the SVID
	kindSVID             // a SPIFFE ID
	kindOwnBundle        // the default name of the bundle
	kindBundle           // a trust domain
	kindAll              // every bundle, as one validator
)

// names are the configured default names.
type names struct{ svid, bundle, all string }

// ref is a resolved resource name.
type ref struct {
	kind kind
	id   spiffeid.ID          // kindSVID
	td   spiffeid.TrustDomain // kindBundle
}

// resolve says what name designates. A SPIFFE ID must have a path; a
// trust domain is written as its name or its ID, exactly (lower case, no
// trailing slash).
func (n names) resolve(name string) ref {
	switch name {
	case n.svid:
		return ref{kind: kindDefaultSVID}
	case n.bundle:
		return ref{kind: kindOwnBundle}
	case n.all:
		return ref{kind: kindAll}
	}
	if id, err := spiffeid.FromString(name); err == nil && id.Path() != "" {
		return ref{kind: kindSVID, id: id}
	}
	if td, err := spiffeid.TrustDomainFromString(name); err == nil && (name == td.Name() || name == td.IDString()) {
		return ref{kind: kindBundle, td: td}
	}
	return ref{kind: kindUnknown}
}

// resource is one secret, encoded.
type resource struct {
	name    string
	any     *anypb.Any
	version string // a digest of the encoded secret
}

// result is what a set of names gives.
type result struct {
	found   []resource
	missing []string // names the caller has nothing for
}

// strict fails when a name gave nothing, as SPIRE does on the state of the
// world protocol.
func (r result) strict() error {
	if len(r.missing) == 0 {
		return nil
	}
	missing := slices.Clone(r.missing)
	slices.Sort(missing)
	const show = 8
	more := ""
	if len(missing) > show {
		more = fmt.Sprintf(" and %d more", len(missing)-show)
		missing = missing[:show]
	}
	for i, m := range missing {
		missing[i] = truncate(m)
	}
	return fmt.Errorf("%w: workload is not authorized for the requested identities %q%s", endpoint.ErrInvalidRequest, missing, more)
}

func (r result) anys() []*anypb.Any {
	out := make([]*anypb.Any, len(r.found))
	for i, res := range r.found {
		out[i] = res.any
	}
	return out
}

// svid is an X509-SVID as SDS sends it.
type svid struct {
	id    spiffeid.ID
	chain [][]byte // DER, leaf first
	key   []byte   // PKCS#8 DER
}

// view is a snapshot arranged for lookups by name, with the resources
// built from it so far, shared by every stream that sees the snapshot.
type view struct {
	snap    *endpoint.Snapshot
	own     spiffeid.TrustDomain
	svids   []svid // the default first; one per ID
	bundles map[spiffeid.TrustDomain]*spiffebundle.Bundle
	tds     []spiffeid.TrustDomain // with X.509 authorities: the own first, then by name

	mu   sync.Mutex
	memo map[memoKey]*memoEntry // guarded by mu
}

// memoKey names a resource built from a view.
type memoKey struct {
	name      string
	validator bool
}

type memoEntry struct {
	once sync.Once
	res  resource
	ok   bool
	err  error
}

// maxCachedViews bounds the views a Server keeps: the snapshots seen last,
// by however many streams.
const maxCachedViews = 64

// viewCache keeps the views of the snapshots seen last, so that a
// rotation reaching many streams of callers that share a snapshot builds
// each resource once, however many streams wake at the same moment.
type viewCache struct {
	mu    sync.Mutex
	views []*view // the most recent last
}

func (c *viewCache) get(snap *endpoint.Snapshot) (*view, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.views {
		if v.snap == snap {
			return v, nil
		}
	}
	// Under the lock, so that the streams a change wakes together share
	// one view; newView only arranges what the snapshot holds.
	v, err := newView(snap)
	if err != nil {
		return nil, err
	}
	if len(c.views) == maxCachedViews {
		copy(c.views, c.views[1:])
		c.views = c.views[:maxCachedViews-1]
	}
	c.views = append(c.views, v)
	return v, nil
}

// memoized returns the resource of key, built by build once for all the
// streams that ask at the same time, or again each time once the view
// holds maxMemo resources.
func (v *view) memoized(key memoKey, build func() (resource, bool, error)) (resource, bool, error) {
	v.mu.Lock()
	e := v.memo[key]
	if e == nil {
		if v.memo == nil {
			v.memo = make(map[memoKey]*memoEntry)
		}
		e = new(memoEntry)
		if len(v.memo) < maxMemo {
			v.memo[key] = e
		}
	}
	v.mu.Unlock()
	e.once.Do(func() { e.res, e.ok, e.err = build() })
	return e.res, e.ok, e.err
}

// maxMemo bounds the resources kept per view: names a caller makes up do
// not grow it without bound.
const maxMemo = 256

func newView(snap *endpoint.Snapshot) (*view, error) {
	v := &view{snap: snap, own: snap.TrustDomain, bundles: make(map[spiffeid.TrustDomain]*spiffebundle.Bundle, len(snap.Bundles))}
	seen := make(map[spiffeid.ID]bool)
	add := func(s svid) {
		if !seen[s.id] {
			seen[s.id] = true
			v.svids = append(v.svids, s)
		}
	}
	for _, raw := range snap.RawX509SVIDs {
		add(svid{id: raw.ID, chain: raw.Certificates, key: raw.PrivateKey})
	}
	for _, parsed := range snap.X509SVIDs {
		key, err := x509.MarshalPKCS8PrivateKey(parsed.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("sds: the key of %s: %w", parsed.ID, err)
		}
		chain := make([][]byte, len(parsed.Certificates))
		for i, c := range parsed.Certificates {
			chain[i] = c.Raw
		}
		add(svid{id: parsed.ID, chain: chain, key: key})
	}
	for _, b := range snap.Bundles {
		if b == nil || len(b.X509Authorities()) == 0 {
			continue
		}
		if _, dup := v.bundles[b.TrustDomain()]; dup {
			continue
		}
		v.bundles[b.TrustDomain()] = b
		v.tds = append(v.tds, b.TrustDomain())
	}
	slices.SortFunc(v.tds, func(a, b spiffeid.TrustDomain) int {
		if a == v.own || b == v.own {
			return boolCmp(b == v.own, a == v.own)
		}
		return cmp.Compare(a.Name(), b.Name())
	})
	return v, nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func (v *view) svidByID(id spiffeid.ID) (svid, bool) {
	for _, s := range v.svids {
		if s.id == id {
			return s, true
		}
	}
	return svid{}, false
}

// build returns the resources names give in snap, or every resource for
// no names, bundles as SPIFFE validators when validator is set.
func (s *Server) build(snap *endpoint.Snapshot, req []string, validator bool) (result, error) {
	v, err := s.views.get(snap)
	if err != nil {
		return result{}, err
	}
	var res result
	if len(req) == 0 {
		for _, td := range v.tds {
			r, _, err := v.memoized(memoKey{name: td.IDString(), validator: validator}, func() (resource, bool, error) {
				r, err := v.bundleSecret(td.IDString(), td, validator)
				return r, err == nil, err
			})
			if err != nil {
				return result{}, err
			}
			res.found = append(res.found, r)
		}
		for _, sv := range v.svids {
			r, _, err := v.memoized(memoKey{name: sv.id.String()}, func() (resource, bool, error) {
				r, err := sv.secret(sv.id.String())
				return r, err == nil, err
			})
			if err != nil {
				return result{}, err
			}
			res.found = append(res.found, r)
		}
		return res, nil
	}
	seen := make(map[string]bool, len(req))
	for _, name := range req {
		if seen[name] {
			continue
		}
		seen[name] = true
		r, ok, err := v.memoized(memoKey{name: name, validator: validator}, func() (resource, bool, error) {
			return s.one(v, name, validator)
		})
		switch {
		case err != nil:
			return result{}, err
		case ok:
			res.found = append(res.found, r)
		default:
			res.missing = append(res.missing, name)
		}
	}
	return res, nil
}

// one returns the resource name gives in v, if any.
func (s *Server) one(v *view, name string, validator bool) (resource, bool, error) {
	ref := s.names.resolve(name)
	switch ref.kind {
	case kindDefaultSVID:
		if len(v.svids) == 0 {
			return resource{}, false, nil
		}
		r, err := v.svids[0].secret(name)
		return r, err == nil, err
	case kindSVID:
		sv, ok := v.svidByID(ref.id)
		if !ok {
			return resource{}, false, nil
		}
		r, err := sv.secret(name)
		return r, err == nil, err
	case kindOwnBundle:
		ref.td = v.own
		fallthrough
	case kindBundle:
		if v.bundles[ref.td] == nil {
			return resource{}, false, nil
		}
		r, err := v.bundleSecret(name, ref.td, validator)
		return r, err == nil, err
	case kindAll:
		if !validator {
			return resource{}, false, fmt.Errorf("%w: %q needs the SPIFFE certificate validator: Envoy 1.18 or later, with SPIFFE certificate validation not disabled", endpoint.ErrInvalidRequest, name)
		}
		if len(v.tds) == 0 {
			return resource{}, false, nil
		}
		tds := make([]*tlsv3.SPIFFECertValidatorConfig_TrustDomain, len(v.tds))
		for i, td := range v.tds {
			tds[i] = &tlsv3.SPIFFECertValidatorConfig_TrustDomain{Name: td.Name(), TrustBundle: inline(pemCerts(v.bundles[td]))}
		}
		r, err := validatorSecret(name, tds)
		return r, err == nil, err
	}
	return resource{}, false, nil
}

// secret is sv as a tls_certificate named name.
func (sv svid) secret(name string) (resource, error) {
	var chain []byte
	for _, der := range sv.chain {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: sv.key})
	return encode(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inline(chain),
		PrivateKey:       inline(key),
	}}})
}

// bundleSecret is the bundle of td as a validation_context named name.
func (v *view) bundleSecret(name string, td spiffeid.TrustDomain, validator bool) (resource, error) {
	certs := pemCerts(v.bundles[td])
	if validator {
		return validatorSecret(name, []*tlsv3.SPIFFECertValidatorConfig_TrustDomain{{Name: td.Name(), TrustBundle: inline(certs)}})
	}
	return encode(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inline(certs),
	}}})
}

// validatorSecret is a validation_context named name whose SPIFFE
// validator holds tds.
func validatorSecret(name string, tds []*tlsv3.SPIFFECertValidatorConfig_TrustDomain) (resource, error) {
	cfg, err := anypb.New(&tlsv3.SPIFFECertValidatorConfig{TrustDomains: tds})
	if err != nil {
		return resource{}, fmt.Errorf("sds: %w", err)
	}
	return encode(&tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		CustomValidatorConfig: &corev3.TypedExtensionConfig{Name: SPIFFEValidatorName, TypedConfig: cfg},
	}}})
}

var deterministic = proto.MarshalOptions{Deterministic: true}

func encode(secret *tlsv3.Secret) (resource, error) {
	a := new(anypb.Any)
	if err := anypb.MarshalFrom(a, secret, deterministic); err != nil {
		return resource{}, fmt.Errorf("sds: %w", err)
	}
	sum := sha256.Sum256(a.Value)
	return resource{name: secret.Name, any: a, version: hex.EncodeToString(sum[:12])}, nil
}

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func pemCerts(b *spiffebundle.Bundle) []byte {
	var out []byte
	for _, c := range b.X509Authorities() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// validator reports whether bundles go to node as SPIFFE validators: an
// Envoy of 1.18 or later, unless SPIFFE certificate validation is
// disabled, by the node's metadata (which wins) or the configuration.
func (s *Server) validator(node *corev3.Node) bool {
	disabled := s.cfg.DisableSPIFFECertValidation
	if f, ok := node.GetMetadata().GetFields()[disableSPIFFECertValidationKey]; ok {
		switch {
		case f.GetStringValue() != "":
			disabled = strings.EqualFold(f.GetStringValue(), "true")
		default:
			disabled = f.GetBoolValue()
		}
	}
	if disabled {
		return false
	}
	bv := node.GetUserAgentBuildVersion().GetVersion()
	if bv == nil {
		return false
	}
	return bv.GetMajorNumber() > 1 || bv.GetMajorNumber() == 1 && bv.GetMinorNumber() >= 18
}

// disableSPIFFECertValidationKey is the node metadata key by which an
// Envoy asks for trusted_ca rather than the SPIFFE validator, as in SPIRE.
const disableSPIFFECertValidationKey = "disable_spiffe_cert_validation"
