package tpm

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// FuzzParsePayload feeds arbitrary payloads to the server's parser: it must
// never panic, and a payload it accepts has an EK that is a restricted
// decryption key, an AK that is a restricted signing key fixed to its TPM,
// whose name is that of the public area sent, and a certificate, if any,
// of the EK's key.
func FuzzParsePayload(f *testing.F) {
	if b, err := os.ReadFile("testdata/payload.json"); err == nil {
		f.Add(b)
		var p payloadMsg
		if json.Unmarshal(b, &p) == nil {
			p.EKCert = nil
			nc, _ := json.Marshal(p)
			f.Add(nc)
		}
	}
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"ek_public":"AAEACwADALIAIINxl2dEhLP4GpDMjUal1yT9UtduBlILZPKh2hszFGmqAAYAgABDABAIAAAAAAABAA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := parsePayload(b)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		if a := ev.ekPub.ObjectAttributes; !a.Restricted || !a.Decrypt || a.SignEncrypt {
			t.Fatalf("accepted EK attributes %+v", a)
		}
		if a := ev.akPub.ObjectAttributes; !a.Restricted || !a.SignEncrypt || a.Decrypt || !a.FixedTPM {
			t.Fatalf("accepted AK attributes %+v", a)
		}
		var p payloadMsg
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		name, err := tpm2.ObjectName(ev.akPub)
		if err != nil || !bytes.Equal(name.Buffer, ev.akName) || !bytes.Equal(tpm2.Marshal(ev.akPub), p.AKPublic) {
			t.Fatalf("AK name %x of another public area", ev.akName)
		}
		if ev.ekCert != nil && !equalKeys(ev.ekKey, ev.ekCert.PublicKey) {
			t.Fatal("certificate of another key accepted")
		}
	})
}

// FuzzParseResponse feeds arbitrary quotes and signatures to the server's
// decoders of TPM structures: they must never panic, and what they accept
// encodes back to the same bytes.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x18, 0, 0}, []byte{0, 0x18, 0, 0x0b, 0, 1, 1, 0, 1, 2})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, quote, sig []byte) {
		if a, err := unmarshalCanonical[tpm2.TPMSAttest](quote); err == nil && !bytes.Equal(tpm2.Marshal(a), quote) {
			t.Fatal("attest does not encode back")
		}
		if s, err := unmarshalCanonical[tpm2.TPMTSignature](sig); err == nil && !bytes.Equal(tpm2.Marshal(s), sig) {
			t.Fatal("signature does not encode back")
		}
	})
}

// FuzzParseDevIDPayload feeds arbitrary tpm_devid payloads to the server's
// parser: it must never panic, and a payload it accepts has a DevID key
// made in and fixed to its TPM, of the key its certificate names, whose
// name is that of the public area sent.
func FuzzParseDevIDPayload(f *testing.F) {
	if b, err := os.ReadFile("testdata/devid_payload.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"version":1,"ek_cert":"MAA=","devid_certs":["MAA="]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dev, err := parseDevIDPayload(b)
		if err != nil {
			return
		}
		if a := dev.devIDPub.ObjectAttributes; !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt {
			t.Fatalf("accepted DevID attributes %+v", a)
		}
		key, err := tpm2.Pub(*dev.devIDPub)
		if err != nil || !equalKeys(key, dev.devIDCert.PublicKey) {
			t.Fatal("DevID certificate of another key accepted")
		}
		name, err := tpm2.ObjectName(dev.devIDPub)
		if err != nil || !bytes.Equal(name.Buffer, dev.devIDName) {
			t.Fatalf("DevID name %x of another public area", dev.devIDName)
		}
		if dev.ekCert == nil {
			t.Fatal("accepted without an EK certificate")
		}
	})
}

// FuzzVerifyDevIDResponse feeds arbitrary answers to the server's check of
// a tpm_devid answer, for the fixture's evidence: it must never panic, and
// accepts nothing (the test does not know the TPM's credential).
func FuzzVerifyDevIDResponse(f *testing.F) {
	b, err := os.ReadFile("testdata/devid_payload.json")
	if err != nil {
		f.Fatal(err)
	}
	dev, err := parseDevIDPayload(b)
	if err != nil {
		f.Fatal(err)
	}
	secret, nonce, blob := make([]byte, SecretSize), make([]byte, NonceSize), []byte("blob")
	aud, _ := audienceOf(td)
	proof, _ := json.Marshal(devIDResponseMsg{Proof: proofWithLabel(devIDProofLabel, secret, td, aud, blob),
		CertifyInfo: []byte{0xff, 0x54, 0x43, 0x47, 0x80, 0x17}, CertifySignature: []byte{0, 0x18, 0, 0x0b, 0, 1, 1, 0, 1, 2},
		DevIDSignature: []byte{0, 0x18, 0, 0x0b, 0, 1, 1, 0, 1, 2}})
	f.Add(proof)
	f.Add([]byte(`{"proof":"AA=="}`))
	f.Fuzz(func(t *testing.T, answer []byte) {
		if err := dev.verifyResponse(answer, secret, td, aud, blob, nonce); err == nil {
			t.Fatal("an answer without a certification by the AK accepted")
		}
	})
}
