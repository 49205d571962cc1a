package workloadapi

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Every parser below checks a whole response message and returns an error
// for the first violation; callers then discard the message and keep what
// they had (WAPI rule 6).

const (
	// maxHintLength bounds hints (WAPI rule 8: implementations SHOULD NOT
	// support longer ones).
	maxHintLength = 1024
	// maxJWKLength bounds a WIT-SVID private key document.
	maxJWKLength = 64 << 10
)

// hintSet tracks hints seen in one response (WAPI rule 8).
type hintSet map[string]struct{}

// skip reports whether an entry with hint h repeats an earlier non-empty
// hint, and records h otherwise. It fails for over-long hints.
func (s hintSet) skip(h string) (bool, error) {
	if len(h) > maxHintLength {
		return false, fmt.Errorf("workloadapi: hint longer than %d bytes", maxHintLength)
	}
	if h == "" {
		return false, nil
	}
	if _, ok := s[h]; ok {
		return true, nil
	}
	s[h] = struct{}{}
	return false, nil
}

func parseX509Context(resp *workloadpb.X509SVIDResponse) (*X509Context, error) {
	return parseX509SVIDResponse(resp, true)
}

// parseX509SVIDResponse parses the SVIDs of resp and, when withBundles is
// set, its bundles. Without bundles, each SVID's bundle must still be present
// but is not parsed: callers that asked only for SVIDs do not pay for
// certificates they will not use.
func parseX509SVIDResponse(resp *workloadpb.X509SVIDResponse, withBundles bool) (*X509Context, error) {
	if len(resp.GetSvids()) == 0 {
		return nil, errors.New("workloadapi: no SVIDs in response")
	}
	hints := hintSet{}
	svids := make([]*x509svid.SVID, 0, len(resp.GetSvids()))
	bundles := x509bundle.NewSet()
	for i, s := range resp.GetSvids() {
		// Every entry is checked, even a skipped duplicate: a malformed
		// message is discarded whole.
		svid, err := x509svid.ParseRaw(s.GetX509Svid(), s.GetX509SvidKey())
		if err != nil {
			return nil, fmt.Errorf("workloadapi: SVID %d: %w", i, err)
		}
		if s.GetSpiffeId() != svid.ID.String() {
			return nil, fmt.Errorf("workloadapi: SVID %d: spiffe_id %q does not match certificate ID %q", i, s.GetSpiffeId(), svid.ID)
		}
		if len(s.GetBundle()) == 0 {
			return nil, fmt.Errorf("workloadapi: SVID %d: missing bundle", i)
		}
		if withBundles {
			bundle, err := x509bundle.ParseRaw(svid.ID.TrustDomain(), s.GetBundle())
			if err != nil {
				return nil, fmt.Errorf("workloadapi: SVID %d: %w", i, err)
			}
			bundles.Add(bundle)
		}
		dup, err := hints.skip(s.GetHint())
		if err != nil {
			return nil, err
		}
		if dup {
			continue
		}
		svid.Hint = s.GetHint()
		svids = append(svids, svid)
	}
	if !withBundles {
		return &X509Context{SVIDs: svids, Bundles: bundles}, nil
	}
	for key, raw := range resp.GetFederatedBundles() {
		td, err := trustDomainFromKey(key)
		if err != nil {
			return nil, err
		}
		bundle, err := x509bundle.ParseRaw(td, raw)
		if err != nil {
			return nil, fmt.Errorf("workloadapi: federated bundle %q: %w", key, err)
		}
		bundles.Add(bundle)
	}
	return &X509Context{SVIDs: svids, Bundles: bundles}, nil
}

func parseX509Bundles(resp *workloadpb.X509BundlesResponse) (*x509bundle.Set, error) {
	set := x509bundle.NewSet()
	if err := parseBundleMap(resp.GetBundles(), x509bundle.ParseRaw, set.Add); err != nil {
		return nil, err
	}
	return set, nil
}

func parseJWTSVIDs(resp *workloadpb.JWTSVIDResponse, audience []string) ([]*jwtsvid.SVID, error) {
	if len(resp.GetSvids()) == 0 {
		return nil, errors.New("workloadapi: there were no SVIDs in the response")
	}
	hints := hintSet{}
	svids := make([]*jwtsvid.SVID, 0, len(resp.GetSvids()))
	for i, s := range resp.GetSvids() {
		svid, err := jwtsvid.ParseInsecure(s.GetSvid(), audience)
		if err != nil {
			return nil, fmt.Errorf("workloadapi: JWT-SVID %d: %w", i, err)
		}
		if s.GetSpiffeId() != svid.ID.String() {
			return nil, fmt.Errorf("workloadapi: JWT-SVID %d: spiffe_id %q does not match subject %q", i, s.GetSpiffeId(), svid.ID)
		}
		dup, err := hints.skip(s.GetHint())
		if err != nil {
			return nil, err
		}
		if dup {
			continue
		}
		svid.Hint = s.GetHint()
		svids = append(svids, svid)
	}
	return svids, nil
}

func parseJWTBundles(resp *workloadpb.JWTBundlesResponse) (*jwtbundle.Set, error) {
	set := jwtbundle.NewSet()
	if err := parseBundleMap(resp.GetBundles(), jwtbundle.Parse, set.Add); err != nil {
		return nil, err
	}
	return set, nil
}

func parseWITSVIDs(resp *workloadpb.WITSVIDResponse) ([]*witsvid.SVID, error) {
	if len(resp.GetSvids()) == 0 {
		return nil, errors.New("workloadapi: no WIT-SVIDs in response")
	}
	hints := hintSet{}
	svids := make([]*witsvid.SVID, 0, len(resp.GetSvids()))
	for i, s := range resp.GetSvids() {
		svid, err := witsvid.ParseInsecure(s.GetWitSvid())
		if err != nil {
			return nil, fmt.Errorf("workloadapi: WIT-SVID %d: %w", i, err)
		}
		if s.GetSpiffeId() != svid.ID.String() {
			return nil, fmt.Errorf("workloadapi: WIT-SVID %d: spiffe_id %q does not match subject %q", i, s.GetSpiffeId(), svid.ID)
		}
		key, err := parseWITKey(s.GetWitSvidKey(), svid.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("workloadapi: WIT-SVID %d: %w", i, err)
		}
		dup, err := hints.skip(s.GetHint())
		if err != nil {
			return nil, err
		}
		if dup {
			continue
		}
		svid.PrivateKey = key
		svid.Hint = s.GetHint()
		svids = append(svids, svid)
	}
	return svids, nil
}

// parseWITKey parses a WIT-SVID private key, a JWK (WIT rule 17), and checks
// that it belongs to the token's cnf key.
func parseWITKey(doc string, pub any) (crypto.Signer, error) {
	if doc == "" {
		return nil, errors.New("missing private key")
	}
	if len(doc) > maxJWKLength {
		return nil, fmt.Errorf("private key JWK longer than %d bytes", maxJWKLength)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON([]byte(doc)); err != nil {
		return nil, fmt.Errorf("unable to parse private key JWK: %w", err)
	}
	if jwk.IsPublic() {
		return nil, errors.New("expected private key JWK, got public key")
	}
	signer, ok := jwk.Key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", jwk.Key)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := signer.Public().(equaler); !ok || !eq.Equal(pub) {
		return nil, errors.New("private key does not match the cnf key")
	}
	return signer, nil
}

func parseWITBundles(resp *workloadpb.WITBundlesResponse) (*witbundle.Set, error) {
	set := witbundle.NewSet()
	parse := func(td spiffeid.TrustDomain, doc string) (*witbundle.Bundle, error) {
		return witbundle.Parse(td, []byte(doc))
	}
	if err := parseBundleMap(resp.GetBundles(), parse, set.Add); err != nil {
		return nil, err
	}
	return set, nil
}

// parseBundleMap parses every entry of a Workload API bundle map, keyed by
// trust domain ID (WAPI rules 11, 13), and hands each bundle to add. The map
// must not be empty: it holds at least the server's own trust domain.
func parseBundleMap[V, B any](bundles map[string]V, parse func(spiffeid.TrustDomain, V) (B, error), add func(B)) error {
	if len(bundles) == 0 {
		return errors.New("workloadapi: no bundles in response")
	}
	for key, raw := range bundles {
		td, err := trustDomainFromKey(key)
		if err != nil {
			return err
		}
		bundle, err := parse(td, raw)
		if err != nil {
			return fmt.Errorf("workloadapi: bundle %q: %w", key, err)
		}
		add(bundle)
	}
	return nil
}

// trustDomainFromKey parses a bundle map key. The standard has servers send
// the trust domain's SPIFFE ID, "spiffe://example.org"; unlike go-spiffe,
// which also takes a bare "example.org", nothing else is accepted.
func trustDomainFromKey(key string) (spiffeid.TrustDomain, error) {
	id, err := spiffeid.FromString(key)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("workloadapi: bundle key %q is not a trust domain SPIFFE ID: %w", key, err)
	}
	if id.Path() != "" {
		return spiffeid.TrustDomain{}, fmt.Errorf("workloadapi: bundle key %q is not a trust domain SPIFFE ID: has a path", key)
	}
	return id.TrustDomain(), nil
}
