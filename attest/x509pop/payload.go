package x509pop

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
)

// MaxChainLength is the largest number of certificates, leaf included, a
// payload may carry.
const MaxChainLength = 8

// marshalPayload encodes a chain as the concatenation of its DER
// certificates.
func marshalPayload(chain []*x509.Certificate) []byte {
	var n int
	for _, c := range chain {
		n += len(c.Raw)
	}
	b := make([]byte, 0, n)
	for _, c := range chain {
		b = append(b, c.Raw...)
	}
	return b
}

// parsePayload decodes a payload made by marshalPayload. It splits the DER
// elements first, so that a payload of many certificates is refused before
// any is parsed.
func parsePayload(b []byte) ([]*x509.Certificate, error) {
	if len(b) == 0 {
		return nil, errors.New("payload is empty")
	}
	if len(b) > attest.MaxNodePayload {
		return nil, fmt.Errorf("payload is larger than %d bytes", attest.MaxNodePayload)
	}
	var ders [][]byte
	for rest := b; len(rest) > 0; {
		if len(ders) == MaxChainLength {
			return nil, fmt.Errorf("payload holds more than %d certificates", MaxChainLength)
		}
		var raw asn1.RawValue
		var err error
		if rest, err = asn1.Unmarshal(rest, &raw); err != nil {
			return nil, fmt.Errorf("certificate %d is not DER: %w", len(ders), err)
		}
		ders = append(ders, raw.FullBytes)
	}
	chain := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i, err)
		}
		chain[i] = c
	}
	return chain, nil
}
