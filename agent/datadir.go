package agent

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Files the agent keeps in Config.DataDir.
const (
	svidFile   = "agent-svid.pem"
	keyFile    = "agent-key.pem"
	bundleFile = "bundle.json"
	maxFile    = 1 << 20
)

// saveState writes the agent's SVID, key (mode 0600) and bundle to dir,
// each atomically. The key is written first, so that a crash between the
// writes leaves a key without its certificate, which load rejects, rather
// than a certificate without its key.
func saveState(dir string, key crypto.Signer, svid *nodeapi.AgentSVID) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("agent: creating the data directory: %w", err)
	}
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("agent: encoding the agent key: %w", err)
	}
	doc, err := svid.Bundle.Marshal()
	if err != nil {
		return fmt.Errorf("agent: encoding the bundle: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{keyFile, keyPEM, 0o600},
		{svidFile, pemutil.EncodeCertificates(svid.Certificates), 0o644},
		{bundleFile, doc, 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("agent: saving %s: %w", f.name, err)
		}
	}
	return nil
}

// saveBundle replaces the saved bundle.
func saveBundle(dir string, b *spiffebundle.Bundle) error {
	if dir == "" {
		return nil
	}
	doc, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("agent: encoding the bundle: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, bundleFile), doc, 0o644); err != nil {
		return fmt.Errorf("agent: saving the bundle: %w", err)
	}
	return nil
}

// errNoState means the data directory holds no saved SVID.
var errNoState = errors.New("agent: no saved SVID")

// loadState reads what saveState wrote and checks that it holds together:
// the key matches the certificate, which is an SVID of td that verifies
// with the saved bundle. It does not check expiry.
func loadState(dir string, td spiffeid.TrustDomain) (crypto.Signer, *nodeapi.AgentSVID, error) {
	if dir == "" {
		return nil, nil, errNoState
	}
	certPEM, err := atomicfile.Read(filepath.Join(dir, svidFile), maxFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errNoState
	}
	if err != nil {
		return nil, nil, fmt.Errorf("agent: reading the saved SVID: %w", err)
	}
	keyPEM, err := atomicfile.ReadPrivate(filepath.Join(dir, keyFile), maxFile)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: reading the saved key: %w", err)
	}
	doc, err := atomicfile.Read(filepath.Join(dir, bundleFile), maxFile)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: reading the saved bundle: %w", err)
	}
	certs, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: the saved SVID: %w", err)
	}
	key, err := pemutil.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: the saved key: %w", err)
	}
	b, err := spiffebundle.Parse(td, doc)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: the saved bundle: %w", err)
	}
	if !samePublicKey(certs[0].PublicKey, key.Public()) {
		return nil, nil, errors.New("agent: the saved key does not match the saved SVID")
	}
	id, _, err := x509svid.Verify(certs, b, x509svid.WithTime(certs[0].NotBefore))
	if err != nil {
		return nil, nil, fmt.Errorf("agent: the saved SVID: %w", err)
	}
	return key, &nodeapi.AgentSVID{ID: id, Certificates: certs, Bundle: b}, nil
}

// leafOf returns the leaf certificate of an agent SVID.
func leafOf(s *nodeapi.AgentSVID) *x509.Certificate { return s.Certificates[0] }
