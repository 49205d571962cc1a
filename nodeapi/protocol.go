package nodeapi

import (
	"crypto/x509"
	"fmt"
)

// ServerPath is the path of the SPIFFE ID an issuing server presents to its
// agents: spiffe://<trust domain>/spiffekit/server.
const ServerPath = "/spiffekit/server"

// Wire limits, checked before anything is parsed.
const (
	// MaxCSRSize is the largest CSR, in bytes, the server parses.
	MaxCSRSize = 16 << 10
	// MaxBatch is the largest number of X509-SVIDs one SignX509SVIDs call
	// may ask for.
	MaxBatch = 1000
	// MaxChainLength is the largest certificate chain the client accepts.
	MaxChainLength = 16
	// MaxAudiences is the largest number of audience values one
	// SignJWTSVID call may carry, as for the Workload API.
	MaxAudiences = 64
	// MaxPublicKeySize is the largest public key (PKIX DER), in bytes, a
	// SignWITSVID call may carry: an RSA key of 8192 bits takes about
	// 1,100.
	MaxPublicKeySize = 2 << 10
	// MaxKeyAlgorithmSize is the longest key algorithm name a SignWITSVID
	// call may carry.
	MaxKeyAlgorithmSize = 16
)

// parseChain parses a DER chain received from a server.
func parseChain(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, fmt.Errorf("nodeapi: empty certificate chain")
	}
	if len(ders) > MaxChainLength {
		return nil, fmt.Errorf("nodeapi: certificate chain of %d certificates exceeds %d", len(ders), MaxChainLength)
	}
	out := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("nodeapi: certificate %d of the chain: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}
