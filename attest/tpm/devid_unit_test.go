package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// devIDFixture is a tpm_devid payload a swtpm made
// (testdata/devid_payload.json).
func devIDFixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/devid_payload.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseDevIDPayloadFixture(t *testing.T) {
	dev, err := parseDevIDPayload(devIDFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	if dev.devIDCert.Subject.CommonName != "node-a" || len(dev.devIDInters) != 1 || dev.devIDPub.Type != tpm2.TPMAlgECC ||
		len(dev.devIDName) != 34 || dev.ekCert == nil {
		t.Errorf("parsed %+v", dev)
	}
}

func TestParseDevIDPayloadRejects(t *testing.T) {
	var good devIDPayloadMsg
	if err := jsonUnmarshal(devIDFixture(t), &good); err != nil {
		t.Fatal(err)
	}
	devPub, _ := tpm2.Unmarshal[tpm2.TPMTPublic](good.DevIDPublic)
	withAttrs := func(f func(*tpm2.TPMAObject)) []byte {
		p := *devPub
		f(&p.ObjectAttributes)
		return tpm2.Marshal(p)
	}
	withNameAlg := func(alg tpm2.TPMAlgID) []byte {
		p := *devPub
		p.NameAlg = alg
		return tpm2.Marshal(p)
	}
	soft, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, tc := range map[string]struct {
		edit func(*devIDPayloadMsg)
		want string
	}{
		"version":      {func(m *devIDPayloadMsg) { m.Version = 2 }, "version 2"},
		"no EK cert":   {func(m *devIDPayloadMsg) { m.EKCert = nil }, "no EK certificate"},
		"no EK public": {func(m *devIDPayloadMsg) { m.EKPublic = nil }, "no EK public area"},
		"no DevID":     {func(m *devIDPayloadMsg) { m.DevIDCerts = nil }, "no DevID certificate"},
		"long chain":   {func(m *devIDPayloadMsg) { m.DevIDCerts = make([][]byte, maxDevIDChain+1) }, "more than 8"},
		"huge cert":    {func(m *devIDPayloadMsg) { m.DevIDCerts = [][]byte{make([]byte, maxCertSize+1)} }, "larger than"},
		"bad cert":     {func(m *devIDPayloadMsg) { m.DevIDCerts = [][]byte{{0x30, 0}} }, "DevID certificate 0"},
		"bad inter":    {func(m *devIDPayloadMsg) { m.DevIDCerts = append(m.DevIDCerts[:1:1], []byte{1}) }, "DevID certificate 1"},
		"no public":    {func(m *devIDPayloadMsg) { m.DevIDPublic = nil }, "no DevID public area"},
		"trailing":     {func(m *devIDPayloadMsg) { m.DevIDPublic = append(bytes.Clone(m.DevIDPublic), 0) }, "DevID public area is not"},
		"not fixedTPM": {func(m *devIDPayloadMsg) { m.DevIDPublic = withAttrs(func(a *tpm2.TPMAObject) { a.FixedTPM = false }) }, "fixed to its TPM"},
		"not fixedPar": {func(m *devIDPayloadMsg) {
			m.DevIDPublic = withAttrs(func(a *tpm2.TPMAObject) { a.FixedParent = false })
		}, "fixed to its TPM"},
		"imported": {func(m *devIDPayloadMsg) {
			m.DevIDPublic = withAttrs(func(a *tpm2.TPMAObject) { a.SensitiveDataOrigin = false })
		}, "generated in"},
		"not signing": {func(m *devIDPayloadMsg) {
			m.DevIDPublic = withAttrs(func(a *tpm2.TPMAObject) { a.SignEncrypt = false })
		}, "signing key"},
		"SHA-1 name":     {func(m *devIDPayloadMsg) { m.DevIDPublic = withNameAlg(tpm2.TPMAlgSHA1) }, "name algorithm"},
		"software key":   {func(m *devIDPayloadMsg) { m.DevIDPublic = softwarePublic(&soft.PublicKey) }, "does not match"},
		"AK not fixed":   {func(m *devIDPayloadMsg) { m.AKPublic = m.DevIDPublic }, "AK is not"},
		"unknown field":  {nil, "unknown field"},
		"trailing JSON":  {nil, "after its JSON object"},
		"huge payload":   {nil, "larger than"},
		"empty payload":  {nil, "empty"},
		"not JSON":       {nil, "not valid"},
		"EK not matched": {func(m *devIDPayloadMsg) { m.EKPublic = m.AKPublic }, "EK"},
	} {
		t.Run(name, func(t *testing.T) {
			var b []byte
			switch name {
			case "unknown field":
				b = []byte(`{"version":1,"devid":1}`)
			case "trailing JSON":
				b = append(devIDFixture(t), []byte(" {}")...)
			case "huge payload":
				b = make([]byte, attest.MaxNodePayload+1)
			case "empty payload":
			case "not JSON":
				b = []byte("[")
			default:
				m := good
				m.DevIDCerts = append([][]byte(nil), good.DevIDCerts...)
				tc.edit(&m)
				b = encode(t, m)
			}
			_, err := parseDevIDPayload(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			// The server refuses it the same way, before any challenge.
			s := newDevIDServer(t, DevIDServerConfig{DevIDCAs: []*x509.Certificate{selfSigned(t)}, EndorsementCAs: []*x509.Certificate{selfSigned(t)}})
			_, err = s.Attest(context.Background(), td, b, neverCalled(t))
			mustReject(t, err, tc.want)
		})
	}
}

func selfSigned(t testing.TB) *x509.Certificate {
	t.Helper()
	return newDevIDCA(t, "test").root
}

func TestDevIDServerAnswers(t *testing.T) {
	// Answers that fail before any TPM structure is trusted, checked
	// against the fixture's evidence.
	dev, err := parseDevIDPayload(devIDFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	nonce := bytes.Repeat([]byte{7}, NonceSize)
	secret := bytes.Repeat([]byte{1}, SecretSize)
	blob := []byte("blob")
	aud := spiffeIDOf(t, "spiffe://example.org/spiffekit/server")
	proof := proofWithLabel(devIDProofLabel, secret, td, aud, blob)
	for name, tc := range map[string]struct {
		rsp  devIDResponseMsg
		raw  string
		want string
	}{
		"not JSON":         {raw: "{", want: "response is not valid"},
		"tpm label":        {rsp: devIDResponseMsg{Proof: proofOf(secret, td, aud, blob)}, want: "did not activate"},
		"no certification": {rsp: devIDResponseMsg{Proof: proof}, want: "no certification"},
		"huge certify":     {rsp: devIDResponseMsg{Proof: proof, CertifyInfo: make([]byte, maxQuoteSize+1), CertifySignature: []byte{1}}, want: "no certification"},
		"bad signature":    {rsp: devIDResponseMsg{Proof: proof, CertifyInfo: []byte{1}, CertifySignature: []byte{1}}, want: "signature"},
	} {
		t.Run(name, func(t *testing.T) {
			b := []byte(tc.raw)
			if tc.raw == "" {
				b = encode(t, tc.rsp)
			}
			err := dev.verifyResponse(b, secret, td, aud, blob, nonce)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNewDevIDServer(t *testing.T) {
	ca := newDevIDCA(t, "x")
	for name, tc := range map[string]struct {
		c    DevIDServerConfig
		want string
	}{
		"no DevID CA":       {DevIDServerConfig{EndorsementCAs: []*x509.Certificate{ca.root}}, "no DevID CAs"},
		"no EK CA":          {DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}}, "no endorsement CAs"},
		"nil DevID CA":      {DevIDServerConfig{DevIDCAs: []*x509.Certificate{nil}, EndorsementCAs: []*x509.Certificate{ca.root}}, "is nil"},
		"no DevID root":     {DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.inter}, EndorsementCAs: []*x509.Certificate{ca.root}}, "no root"},
		"no EK root":        {DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}, EndorsementCAs: []*x509.Certificate{ca.inter}}, "endorsement CAs"},
		"intermediate kept": {DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root, ca.inter}, EndorsementCAs: []*x509.Certificate{ca.root}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := NewDevIDServer(tc.c)
			if tc.want == "" {
				if err != nil || len(s.inters) != 1 || s.Type() != "tpm_devid" {
					t.Fatalf("got %v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	s := newDevIDServer(t, DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}, EndorsementCAs: []*x509.Certificate{ca.root}})
	if _, err := s.Attest(context.Background(), td, nil, nil); err == nil || errors.Is(err, attest.ErrNodeRejected) {
		t.Errorf("Attest without a challenger: %v", err)
	}
	if _, err := s.Attest(context.Background(), zeroTD, nil, neverCalled(t)); err == nil || errors.Is(err, attest.ErrNodeRejected) {
		t.Errorf("Attest without a trust domain: %v", err)
	}
}

func TestLoadDevIDServer(t *testing.T) {
	dir := t.TempDir()
	ca := newDevIDCA(t, "x")
	bundle := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(bundle, pemOf(ca.root, ca.inter), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o644)
	if s, err := LoadDevIDServer(DevIDFileConfig{DevIDCAPath: bundle, EndorsementCAPath: bundle}); err != nil || len(s.roots) != 1 {
		t.Fatalf("LoadDevIDServer: %v", err)
	}
	for _, tc := range []struct {
		c    DevIDFileConfig
		want string
	}{
		{DevIDFileConfig{DevIDCAPath: filepath.Join(dir, "missing.pem"), EndorsementCAPath: bundle}, "DevID CA bundle"},
		{DevIDFileConfig{DevIDCAPath: bundle, EndorsementCAPath: garbage}, "endorsement CA bundle"},
	} {
		if _, err := LoadDevIDServer(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

func TestNewDevIDClient(t *testing.T) {
	var good devIDPayloadMsg
	if err := jsonUnmarshal(devIDFixture(t), &good); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(good.DevIDCerts[0])
	other := selfSigned(t)
	pub2B := append([]byte{byte(len(good.DevIDPublic) >> 8), byte(len(good.DevIDPublic))}, good.DevIDPublic...)
	ok := DevIDClientConfig{TrustDomain: td, DevIDCert: []*x509.Certificate{leaf}, DevIDPublic: pub2B, DevIDPrivate: []byte{0, 1, 2}}
	c, err := NewDevIDClient(ok)
	if err != nil || c.Type() != "tpm_devid" || !bytes.Equal(c.public, good.DevIDPublic) {
		t.Fatalf("NewDevIDClient: %v", err)
	}
	for name, tc := range map[string]struct {
		edit func(*DevIDClientConfig)
		want string
	}{
		"no trust domain": {func(c *DevIDClientConfig) { c.TrustDomain = zeroTD }, "no trust domain"},
		"no cert":         {func(c *DevIDClientConfig) { c.DevIDCert = nil }, "no DevID certificate"},
		"nil inter":       {func(c *DevIDClientConfig) { c.DevIDCert = []*x509.Certificate{leaf, nil} }, "is nil"},
		"long chain":      {func(c *DevIDClientConfig) { c.DevIDCert = make([]*x509.Certificate, 9); c.DevIDCert[0] = leaf }, "more than"},
		"other cert":      {func(c *DevIDClientConfig) { c.DevIDCert = []*x509.Certificate{other} }, "not of the DevID key"},
		"bad public":      {func(c *DevIDClientConfig) { c.DevIDPublic = []byte{1, 2, 3} }, "DevID public area"},
		"no private":      {func(c *DevIDClientConfig) { c.DevIDPrivate = nil }, "private area of 0 bytes"},
		"huge private":    {func(c *DevIDClientConfig) { c.DevIDPrivate = make([]byte, maxBlobSize+1) }, "private area"},
		"not fixed":       {func(c *DevIDClientConfig) { c.DevIDPublic = softwarePublicAttrs(t, good.DevIDPublic) }, "fixed to its TPM"},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			if _, err := NewDevIDClient(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}

	// Challenges refused before the TPM is opened.
	ok.Open = func() (transport.TPMCloser, error) {
		t.Error("TPM opened")
		return nil, errors.New("no")
	}
	c, err = NewDevIDClient(ok)
	if err != nil {
		t.Fatal(err)
	}
	goodCh := devIDChallengeMsg{Version: 1, Audience: "spiffe://example.org/spiffekit/server", CredentialBlob: []byte{1},
		EncryptedSecret: []byte{1}, Nonce: make([]byte, NonceSize)}
	for name, tc := range map[string]struct {
		edit func(*devIDChallengeMsg)
		want string
	}{
		"version":      {func(m *devIDChallengeMsg) { m.Version = 0 }, "version 0"},
		"other server": {func(m *devIDChallengeMsg) { m.Audience = "spiffe://other.example/spiffekit/server" }, "not answered"},
		"no blob":      {func(m *devIDChallengeMsg) { m.CredentialBlob = nil }, "credential"},
		"huge secret":  {func(m *devIDChallengeMsg) { m.EncryptedSecret = make([]byte, maxBlobSize+1) }, "credential"},
		"short nonce":  {func(m *devIDChallengeMsg) { m.Nonce = []byte{1} }, "nonce of 1 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			m := goodCh
			tc.edit(&m)
			if _, err := c.Respond(context.Background(), encode(t, m)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := c.Respond(context.Background(), []byte("{")); err == nil {
		t.Error("malformed challenge answered")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Respond(ctx, encode(t, goodCh)); !errors.Is(err, context.Canceled) {
		t.Errorf("Respond after cancel: %v", err)
	}
	if _, err := c.Payload(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Payload after cancel: %v", err)
	}

	// Without a TPM at the default path's place.
	ok.Open, ok.Device = nil, filepath.Join(t.TempDir(), "tpmrm0")
	c, err = NewDevIDClient(ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Respond(context.Background(), encode(t, goodCh)); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Respond without a TPM: %v", err)
	}
	if _, err := c.Payload(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Payload without a TPM: %v", err)
	}
}

// softwarePublicAttrs returns pub with fixedTPM cleared.
func softwarePublicAttrs(t *testing.T, pub []byte) []byte {
	t.Helper()
	p, err := tpm2.Unmarshal[tpm2.TPMTPublic](pub)
	if err != nil {
		t.Fatal(err)
	}
	p.ObjectAttributes.FixedTPM = false
	return tpm2.Marshal(p)
}

func TestLoadDevIDClient(t *testing.T) {
	dir := t.TempDir()
	var good devIDPayloadMsg
	if err := jsonUnmarshal(devIDFixture(t), &good); err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(good.DevIDCerts[0])
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := DevIDFiles{CertPath: write("cert.pem", pemOf(leaf)), PrivPath: write("priv", []byte{0, 1, 2}), PubPath: write("pub", good.DevIDPublic)}
	if _, err := LoadDevIDClient(DevIDClientConfig{TrustDomain: td}, files); err != nil {
		t.Fatalf("LoadDevIDClient: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		edit func(*DevIDFiles)
		want string
	}{
		{func(f *DevIDFiles) { f.CertPath = missing }, "reading the DevID certificate"},
		{func(f *DevIDFiles) { f.CertPath = write("garbage", []byte("x")) }, "DevID certificate"},
		{func(f *DevIDFiles) { f.PrivPath = missing }, "private key blob"},
		{func(f *DevIDFiles) { f.PubPath = missing }, "public key blob"},
	} {
		f := files
		tc.edit(&f)
		if _, err := LoadDevIDClient(DevIDClientConfig{TrustDomain: td}, f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}

// tpmSig builds a TPMT_SIGNATURE.
func rsaSig(alg, hash tpm2.TPMAlgID, sig []byte) *tpm2.TPMTSignature {
	return &tpm2.TPMTSignature{SigAlg: alg, Signature: tpm2.NewTPMUSignature(alg,
		&tpm2.TPMSSignatureRSA{Hash: hash, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: sig}})}
}

func TestVerifyDevIDSignature(t *testing.T) {
	msg := []byte("message")
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	d384 := sha512.Sum384(msg)
	pss, _ := rsa.SignPSS(rand.Reader, rk, crypto.SHA384, d384[:], nil)
	pkcs, _ := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA384, d384[:])
	r, s, _ := ecdsa.Sign(rand.Reader, ek, d384[:])
	ecSig := &tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA,
		&tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA384, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()}})}
	for name, tc := range map[string]struct {
		key  any
		sig  *tpm2.TPMTSignature
		want string
	}{
		"PSS SHA-384":      {&rk.PublicKey, rsaSig(tpm2.TPMAlgRSAPSS, tpm2.TPMAlgSHA384, pss), ""},
		"PKCS1 SHA-384":    {&rk.PublicKey, rsaSig(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA384, pkcs), ""},
		"ECDSA P-384":      {&ek.PublicKey, ecSig, ""},
		"PSS as PKCS1":     {&rk.PublicKey, rsaSig(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA384, pss), "does not verify"},
		"wrong hash":       {&rk.PublicKey, rsaSig(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA512, pkcs), "does not verify"},
		"SHA-1":            {&rk.PublicKey, rsaSig(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA1, pkcs), "not SHA-256"},
		"ECDSA for RSA":    {&rk.PublicKey, ecSig, "for an RSA key"},
		"RSA for ECC":      {&ek.PublicKey, rsaSig(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA384, pkcs), "for an ECC key"},
		"unsupported key":  {"key", ecSig, "unsupported"},
		"ECDSA other key":  {&mustECKey(t).PublicKey, ecSig, "does not verify"},
		"RSA other scheme": {&rk.PublicKey, &tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgHMAC}, "for an RSA key"},
	} {
		t.Run(name, func(t *testing.T) {
			err := verifyDevIDSignature(tc.key, msg, tc.sig)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDevIDScheme(t *testing.T) {
	ecc, rsaT := eccDevIDTemplate(), rsaDevIDTemplate()
	if _, h, in, err := devIDScheme(&ecc); err != nil || h != tpm2.TPMAlgSHA256 || in.Scheme != tpm2.TPMAlgNull {
		t.Errorf("ECC with its own scheme: %v %v %v", h, in.Scheme, err)
	}
	if alg, h, in, err := devIDScheme(&rsaT); err != nil || alg != tpm2.TPMAlgRSASSA || h != tpm2.TPMAlgSHA256 || in.Scheme != tpm2.TPMAlgRSASSA {
		t.Errorf("RSA without a scheme: %v %v %v %v", alg, h, in.Scheme, err)
	}
	pss := rsaDevIDTemplate()
	pss.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
		Scheme: tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSAPSS, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAPSS,
			&tpm2.TPMSSigSchemeRSAPSS{HashAlg: tpm2.TPMAlgSHA384})}, KeyBits: 2048})
	if alg, h, _, err := devIDScheme(&pss); err != nil || alg != tpm2.TPMAlgRSAPSS || h != tpm2.TPMAlgSHA384 {
		t.Errorf("RSAPSS: %v %v %v", alg, h, err)
	}
	eccNull := eccDevIDTemplate()
	eccNull.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull}, CurveID: tpm2.TPMECCNistP256})
	if alg, _, in, err := devIDScheme(&eccNull); err != nil || alg != tpm2.TPMAlgECDSA || in.Scheme != tpm2.TPMAlgECDSA {
		t.Errorf("ECC without a scheme: %v %v", alg, err)
	}
	oaep := rsaDevIDTemplate()
	oaep.Parameters = tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
		Scheme: tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgOAEP, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgOAEP,
			&tpm2.TPMSEncSchemeOAEP{HashAlg: tpm2.TPMAlgSHA256})}, KeyBits: 2048})
	if _, _, _, err := devIDScheme(&oaep); err == nil {
		t.Error("OAEP accepted as a signing scheme")
	}
	sym := tpm2.TPMTPublic{Type: tpm2.TPMAlgSymCipher}
	if _, _, _, err := devIDScheme(&sym); err == nil {
		t.Error("symmetric key accepted")
	}
}

func TestTrimTPM2B(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte{0, 2, 9, 9}, []byte{9, 9}},
		{[]byte{0, 3, 9, 9}, []byte{0, 3, 9, 9}},
		{[]byte{0}, []byte{0}},
		{nil, nil},
	} {
		if got := trimTPM2B(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("trimTPM2B(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestDevIDSigned(t *testing.T) {
	aud := spiffeIDOf(t, "spiffe://example.org/spiffekit/server")
	base := devIDSigned(td, aud, []byte{1})
	for _, other := range [][]byte{
		devIDSigned(otherTD, aud, []byte{1}),
		devIDSigned(td, spiffeIDOf(t, "spiffe://example.org/spiffekit/serve"), []byte{1}),
		devIDSigned(td, aud, []byte{2}),
	} {
		if bytes.Equal(base, other) {
			t.Error("two exchanges sign the same message")
		}
	}
}

var (
	jsonUnmarshal = json.Unmarshal
	zeroTD        spiffeid.TrustDomain
)

// pemOf encodes certificates as PEM.
func pemOf(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}
