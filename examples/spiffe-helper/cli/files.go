package cli

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// path returns where the file name is written: in cert_dir.
func (c *Config) path(name string) string { return filepath.Join(c.CertDir, name) }

// writeX509 writes the X.509 files of x as spiffe-helper does: the SVID
// (the one of hint, else the default) with its intermediates, unless
// add_intermediates_to_bundle moves them to the bundle file; its key as a
// PKCS#8 PEM block; and the bundle of its trust domain, with the other
// trust domains' authorities when include_federated_domains is set. Each
// file is replaced atomically; the bundle goes first, so that a reader
// never sees a certificate its trust does not cover yet. It returns the
// SVID written.
func (c *Config) writeX509(x *workloadapi.X509Context, now time.Time) (*x509svid.SVID, error) {
	svid, err := pickX509(x, c.Hint)
	if err != nil {
		return nil, err
	}
	bundle, ok := x.Bundles.Get(svid.ID.TrustDomain())
	if !ok {
		return nil, fmt.Errorf("no bundle for trust domain %q", svid.ID.TrustDomain())
	}
	roots := bundle.X509Authorities()
	certs := svid.Certificates
	if c.AddIntermediatesToBundle {
		roots = append(roots, certs[1:]...)
		certs = certs[:1]
	}
	if c.IncludeFederatedDomains {
		for _, b := range x.Bundles.Bundles() {
			if b.TrustDomain() != svid.ID.TrustDomain() {
				roots = append(roots, b.X509Authorities()...)
			}
		}
	}
	key, err := x509.MarshalPKCS8PrivateKey(svid.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("encoding the private key: %w", err)
	}
	certMode := fileMode(c.CertFileMode)
	if err := writeFile(c.path(c.SVIDBundleFileName), c.certsPEM(roots, now), certMode); err != nil {
		return nil, err
	}
	if err := writeFile(c.path(c.SVIDKeyFileName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), fileMode(c.KeyFileMode)); err != nil {
		return nil, err
	}
	if err := writeFile(c.path(c.SVIDFileName), c.certsPEM(certs, now), certMode); err != nil {
		return nil, err
	}
	return svid, nil
}

// certsPEM encodes certs as CERTIFICATE blocks, leaving out the expired
// ones when omit_expired is set.
func (c *Config) certsPEM(certs []*x509.Certificate, now time.Time) []byte {
	var out []byte
	for _, cert := range certs {
		if c.OmitExpired && cert.NotAfter.Before(now) {
			continue
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
	}
	return out
}

// pickX509 returns the SVID of hint, or the default SVID without one.
func pickX509(x *workloadapi.X509Context, hint string) (*x509svid.SVID, error) {
	if len(x.SVIDs) == 0 {
		return nil, errors.New("the Workload API gave no X509-SVID")
	}
	if hint == "" {
		return x.DefaultSVID(), nil
	}
	for _, s := range x.SVIDs {
		if s.Hint == hint {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no X509-SVID has the hint %q", hint)
}

// pickJWT returns the JWT-SVID of hint, or the first without one.
func pickJWT(svids []*jwtsvid.SVID, hint string) (*jwtsvid.SVID, error) {
	if len(svids) == 0 {
		return nil, errors.New("the Workload API gave no JWT-SVID")
	}
	if hint == "" {
		return svids[0], nil
	}
	for _, s := range svids {
		if s.Hint == hint {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no JWT-SVID has the hint %q", hint)
}

// writeJWTSVID writes the token of svid to the file name.
func (c *Config) writeJWTSVID(svid *jwtsvid.SVID, name string) error {
	return writeFile(c.path(name), []byte(svid.Marshal()), fileMode(c.JWTSVIDFileMode))
}

// writeJWTBundles writes the JWT bundles as spiffe-helper does: a JSON
// object whose keys are trust domain names and whose values are the
// standard base64 of each bundle's JWK Set.
func (c *Config) writeJWTBundles(set *jwtbundle.Set) error {
	doc := map[string]string{}
	for _, b := range set.Bundles() {
		jwks, err := b.Marshal()
		if err != nil {
			return fmt.Errorf("encoding the JWT bundle of %q: %w", b.TrustDomain(), err)
		}
		doc[b.TrustDomain().Name()] = base64.StdEncoding.EncodeToString(jwks)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return writeFile(c.path(c.JWTBundleFileName), data, fileMode(c.JWTBundleFileMode))
}

// writeFile replaces the file at path atomically with data, of mode perm.
func writeFile(path string, data []byte, perm fs.FileMode) error {
	err := atomicfile.Write(path, data, perm)
	if err == nil {
		return nil
	}
	// The error names the temporary file; path says more.
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	}
	return fmt.Errorf("writing %s: %w", path, err)
}
