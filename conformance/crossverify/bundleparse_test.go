package crossverify

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	gsjwtbundle "github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	gsx509bundle "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
)

// TestX509BundleParseAgrees feeds well-formed and malformed PEM and DER
// inputs to both libraries' x509bundle.Parse and ParseRaw.
func TestX509BundleParseAgrees(t *testing.T) {
	roots := newAuthorities(t).x509
	certPEM := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	two := append(certPEM(roots[0]), certPEM(roots[1])...)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8(t, newECKey(t))})
	garbagePEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")})

	pemInputs := map[string][]byte{
		"empty":                  nil,
		"one certificate":        certPEM(roots[0]),
		"two certificates":       two,
		"duplicate certificate":  append(certPEM(roots[0]), certPEM(roots[0])...),
		"certificate and key":    append(certPEM(roots[0]), keyPEM...),
		"key only":               keyPEM,
		"garbage DER in PEM":     garbagePEM,
		"not PEM":                []byte("hello"),
		"PEM then trailing text": append(certPEM(roots[0]), []byte("trailing")...),
		"leading text then PEM":  append([]byte("leading\n"), certPEM(roots[0])...),
		"truncated PEM":          certPEM(roots[0])[:100],
		"whitespace only":        []byte("\n \n"),
	}
	for name, in := range pemInputs {
		ours, oErr := x509bundle.Parse(exampleTD, in)
		gs, gErr := gsx509bundle.Parse(gsExampleTD, in)
		if name == "key only" {
			// Documented difference: non-empty input without any CERTIFICATE
			// block is an error for us; go-spiffe returns an empty bundle.
			assert.NoError(t, gErr)
			assert.True(t, gs.Empty())
			assert.Error(t, oErr)
			continue
		}
		if assert.Equal(t, verdictOf(gErr), verdictOf(oErr), "Parse %s: ours %v, go-spiffe %v", name, oErr, gErr) && gErr == nil {
			assert.Equal(t, rawCerts(gs.X509Authorities()), rawCerts(ours.X509Authorities()), "Parse %s", name)
		}
	}

	derInputs := map[string][]byte{
		"empty":            nil,
		"one certificate":  roots[0].Raw,
		"two certificates": concatDER(roots),
		"duplicate":        append(append([]byte{}, roots[0].Raw...), roots[0].Raw...),
		"trailing garbage": append(append([]byte{}, roots[0].Raw...), 0x30, 0x03, 0x01),
		"truncated":        roots[0].Raw[:len(roots[0].Raw)-1],
		"PEM given to DER": certPEM(roots[0]),
	}
	for name, in := range derInputs {
		ours, oErr := x509bundle.ParseRaw(exampleTD, in)
		gs, gErr := gsx509bundle.ParseRaw(gsExampleTD, in)
		if assert.Equal(t, verdictOf(gErr), verdictOf(oErr), "ParseRaw %s: ours %v, go-spiffe %v", name, oErr, gErr) && gErr == nil {
			assert.Equal(t, rawCerts(gs.X509Authorities()), rawCerts(ours.X509Authorities()), "ParseRaw %s", name)
		}
	}
}

// TestJWTBundleParseAgrees compares jwtbundle.Parse on JWK Sets. Rows where
// our documented behaviour differs say so in the "ours" column.
func TestJWTBundleParseAgrees(t *testing.T) {
	const ec = `{"kty":"EC","kid":"k1","crv":"P-256","x":"U06wt3DmxYNCRxQO0-yVXsv0w3gFD_UxAZvXGBIUR4w","y":"ze1JOXY16NuVHSzzYAhgp5qSlMCQaD2Sm2j6W1iZJPA"}`
	const ec2 = `{"kty":"EC","kid":"k2","crv":"P-256","x":"U06wt3DmxYNCRxQO0-yVXsv0w3gFD_UxAZvXGBIUR4w","y":"ze1JOXY16NuVHSzzYAhgp5qSlMCQaD2Sm2j6W1iZJPA"}`
	for _, tc := range []struct {
		name, doc string
		ours, gs  verdict
	}{
		{"one key", `{"keys":[` + ec + `]}`, accept, accept},
		{"two keys", `{"keys":[` + ec + `,` + ec2 + `]}`, accept, accept},
		{"with use jwt-svid", `{"keys":[` + ec[:len(ec)-1] + `,"use":"jwt-svid"}]}`, accept, accept},   // JWT rule 14
		{"with use x509-svid", `{"keys":[` + ec[:len(ec)-1] + `,"use":"x509-svid"}]}`, accept, accept}, // use ignored
		{"empty keys", `{"keys":[]}`, accept, accept},
		{"keys missing", `{}`, reject, accept}, // documented: ours rejects
		{"key without kid", `{"keys":[{"kty":"EC","crv":"P-256","x":"U06wt3DmxYNCRxQO0-yVXsv0w3gFD_UxAZvXGBIUR4w","y":"ze1JOXY16NuVHSzzYAhgp5qSlMCQaD2Sm2j6W1iZJPA"}]}`, reject, reject},
		{"duplicate kid", `{"keys":[` + ec + `,` + ec + `]}`, reject, accept},             // documented: ours rejects
		{"unknown kty", `{"keys":[` + ec + `,{"kty":"XYZ","kid":"k3"}]}`, accept, reject}, // documented: ours skips
		{"not JSON", `hello`, reject, reject},
		{"keys not an array", `{"keys":{}}`, reject, reject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, oErr := jwtbundle.Parse(exampleTD, []byte(tc.doc))
			gs, gErr := gsjwtbundle.Parse(gsExampleTD, []byte(tc.doc))
			assert.Equal(t, tc.ours, verdictOf(oErr), "spiffekit: %v", oErr)
			assert.Equal(t, tc.gs, verdictOf(gErr), "go-spiffe: %v", gErr)
			if oErr == nil && gErr == nil {
				keysEqual(t, gs.JWTAuthorities(), ours.JWTAuthorities(), tc.name)
			}
		})
	}
}
