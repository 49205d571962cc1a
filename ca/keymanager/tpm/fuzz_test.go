package tpm

import (
	"encoding/json"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/ca"
)

// FuzzParseBlob: no key file makes parseBlob panic, and what it accepts
// is a signing key that cannot leave its TPM.
func FuzzParseBlob(f *testing.F) {
	for _, alg := range []ca.KeyAlgorithm{ca.ECP256, ca.RSA2048} {
		tmpl, err := template(alg)
		if err != nil {
			f.Fatal(err)
		}
		if alg == ca.ECP256 {
			tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
				X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
				Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
			})
		}
		b, err := encodeBlob(tpm2.New2B(tmpl), tpm2.TPM2BPrivate{Buffer: []byte{1, 2, 3}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"public":"AAE=","private":"AQ=="}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := parseBlob(data)
		if err != nil {
			return
		}
		a := b.pub.ObjectAttributes
		if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || a.Restricted || !a.SignEncrypt {
			t.Fatalf("accepted attributes %+v", a)
		}
		var f keyFile
		if err := json.Unmarshal(data, &f); err != nil || len(b.private.Buffer) == 0 {
			t.Fatalf("accepted %q", data)
		}
	})
}
