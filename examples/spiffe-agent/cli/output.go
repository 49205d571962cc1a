package cli

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// The -output json forms. Their field names are part of the interface,
// documented in README.md ("JSON output"), and checked against golden
// files: add fields, never rename or remove one. The forms of api fetch
// x509, api watch, api fetch jwt and api validate jwt carry the field
// names of the Workload API's messages, as SPIRE's agent prints them;
// certificates and keys are DER, base64-encoded by encoding/json.

// printJSON prints v as one line of JSON.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// x509SVIDJSON is an X509-SVID with its key and its trust domain's
// bundle.
type x509SVIDJSON struct {
	SPIFFEID string `json:"spiffe_id"`
	// X509SVID is the chain, leaf first, its DER concatenated.
	X509SVID []byte `json:"x509_svid"`
	// X509SVIDKey is the PKCS#8 DER key.
	X509SVIDKey []byte `json:"x509_svid_key"`
	// Bundle is the X.509 authorities of the SVID's trust domain, their
	// DER concatenated.
	Bundle []byte `json:"bundle"`
	Hint   string `json:"hint"`
}

// x509JSON is an X.509 context: the SVIDs and the federated bundles by
// trust domain name.
type x509JSON struct {
	SVIDs            []x509SVIDJSON    `json:"svids"`
	FederatedBundles map[string][]byte `json:"federated_bundles"`
}

// derOf returns the DER of certs one after the other.
func derOf(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

func toX509JSON(x509ctx *workloadapi.X509Context) (x509JSON, error) {
	out := x509JSON{SVIDs: []x509SVIDJSON{}, FederatedBundles: map[string][]byte{}}
	for _, svid := range x509ctx.SVIDs {
		key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
		if err != nil {
			return x509JSON{}, fmt.Errorf("encoding the key of %s: %w", svid.ID, err)
		}
		j := x509SVIDJSON{SPIFFEID: svid.ID.String(), X509SVID: derOf(svid.Certificates), X509SVIDKey: key, Hint: svid.Hint}
		if b, err := x509ctx.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain()); err == nil {
			j.Bundle = derOf(b.X509Authorities())
		}
		out.SVIDs = append(out.SVIDs, j)
	}
	for _, b := range federatedBundles(x509ctx) {
		out.FederatedBundles[b.TrustDomain().Name()] = derOf(b.X509Authorities())
	}
	return out, nil
}

// jwtSVIDJSON is a JWT-SVID.
type jwtSVIDJSON struct {
	SPIFFEID string `json:"spiffe_id"`
	SVID     string `json:"svid"`
	Hint     string `json:"hint"`
}

// witSVIDJSON is one WIT-SVID of api fetch wit, without its private key.
type witSVIDJSON struct {
	SPIFFEID  string    `json:"spiffe_id"`
	SVID      string    `json:"svid"`
	ExpiresAt time.Time `json:"expires_at"`
	Hint      string    `json:"hint"`
}

// witJSON is the WIT-SVIDs of api fetch wit.
type witJSON struct {
	SVIDs []witSVIDJSON `json:"svids"`
}

// jwtJSON is the JWT-SVIDs of api fetch jwt.
type jwtJSON struct {
	SVIDs []jwtSVIDJSON `json:"svids"`
	// Bundles are the JWT bundles the caller trusts, by trust domain name:
	// each a JWK Set document, base64-encoded as the Workload API's
	// JWTBundlesResponse carries it.
	Bundles map[string][]byte `json:"bundles"`
}

func toJWTJSON(svids []*jwtsvid.SVID, bundles *jwtbundle.Set) (jwtJSON, error) {
	out := jwtJSON{SVIDs: []jwtSVIDJSON{}, Bundles: map[string][]byte{}}
	for _, s := range svids {
		out.SVIDs = append(out.SVIDs, jwtSVIDJSON{SPIFFEID: s.ID.String(), SVID: s.Marshal(), Hint: s.Hint})
	}
	for _, b := range bundles.Bundles() {
		doc, err := b.Marshal()
		if err != nil {
			return jwtJSON{}, fmt.Errorf("the JWT bundle of %s: %w", b.TrustDomain().Name(), err)
		}
		out.Bundles[b.TrustDomain().Name()] = doc
	}
	return out, nil
}

// validJSON is a JWT-SVID the Workload API found valid: its subject and
// its claims.
type validJSON struct {
	SPIFFEID string         `json:"spiffe_id"`
	Claims   map[string]any `json:"claims"`
}

// healthJSON is the result of healthcheck, printed whether healthy or
// not.
type healthJSON struct {
	Address string `json:"address"`
	Healthy bool   `json:"healthy"`
	Reason  string `json:"reason,omitempty"`
}
