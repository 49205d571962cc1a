package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fixture is a payload a swtpm made (testdata/payload.json).
func fixture(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/payload.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureMsg(t *testing.T) payloadMsg { return decodePayload(t, fixture(t)) }

// fixtureServer trusts the fixture's TPM by its EK hash.
func fixtureServer(t *testing.T, pcrs ...int) *Server {
	t.Helper()
	return newServer(t, ServerConfig{EKHashes: []string{ekHashOf(t, fixture(t))}, PCRs: pcrs})
}

func TestParsePayloadFixture(t *testing.T) {
	ev, err := parsePayload(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	// The EK hash is what the server README's openssl command gives from
	// the certificate: openssl x509 -pubkey -noout | openssl pkey -pubin
	// -outform DER | sha256sum.
	if h, err := EKHash(ev.ekKey); err != nil || h != "ea209db77fc58aec94f37cae7510395d4da74fc785d3d3d3ef35d697e382ad2a" {
		t.Errorf("EK hash %s, %v", h, err)
	}
	if ev.ekCert == nil || ev.ekPub.Type != tpm2.TPMAlgRSA || ev.akPub.Type != tpm2.TPMAlgECC || len(ev.akName) != 34 {
		t.Errorf("parsed %+v", ev)
	}
}

func TestParsePayloadRejects(t *testing.T) {
	good := fixtureMsg(t)
	withTrailing := func(b []byte) []byte { return append(bytes.Clone(b), 0) }
	// The EK's and AK's attributes, flipped one at a time.
	ekPub, _ := tpm2.Unmarshal[tpm2.TPMTPublic](good.EKPublic)
	akPub, _ := tpm2.Unmarshal[tpm2.TPMTPublic](good.AKPublic)
	ekSign := *ekPub
	ekSign.ObjectAttributes.SignEncrypt = true
	akUnrestricted := *akPub
	akUnrestricted.ObjectAttributes.Restricted = false
	akMovable := *akPub
	akMovable.ObjectAttributes.FixedTPM = false
	akSHA1 := *akPub
	akSHA1.NameAlg = tpm2.TPMAlgSHA1
	akImported := *akPub
	akImported.ObjectAttributes.SensitiveDataOrigin = false
	akBadPoint := *akPub
	akBadPoint.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: bytes.Repeat([]byte{1}, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: bytes.Repeat([]byte{2}, 32)},
	})
	ekSmall := *ekPub
	ekSmall.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: bytes.Repeat([]byte{0xff}, 128)})
	symKey := tpm2.TPMTPublic{Type: tpm2.TPMAlgSymCipher, NameAlg: tpm2.TPMAlgSHA256,
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgSymCipher, &tpm2.TPMSSymCipherParms{Sym: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull}}),
		Unique:     tpm2.NewTPMUPublicID(tpm2.TPMAlgSymCipher, &tpm2.TPM2BDigest{Buffer: make([]byte, 32)})}

	for name, tc := range map[string]struct {
		edit func(*payloadMsg)
		raw  []byte
		want string
	}{
		"empty":             {raw: []byte{}, want: "empty"},
		"huge":              {raw: append([]byte(`{"version":1,"ek_cert":"`), bytes.Repeat([]byte("A"), attest.MaxNodePayload)...), want: "larger than"},
		"not JSON":          {raw: []byte("\x30\x82"), want: "not valid"},
		"two objects":       {raw: []byte(`{"version":1}{}`), want: "after its JSON object"},
		"unknown field":     {raw: []byte(`{"version":1,"ek_hash":"x"}`), want: "unknown field"},
		"version 2":         {edit: func(p *payloadMsg) { p.Version = 2 }, want: "version 2"},
		"no EK":             {edit: func(p *payloadMsg) { p.EKPublic = nil }, want: "no EK public area"},
		"no AK":             {edit: func(p *payloadMsg) { p.AKPublic = nil }, want: "no AK public area"},
		"EK trailing byte":  {edit: func(p *payloadMsg) { p.EKPublic = withTrailing(p.EKPublic) }, want: "canonical"},
		"AK truncated":      {edit: func(p *payloadMsg) { p.AKPublic = p.AKPublic[:20] }, want: "not a TPMT_PUBLIC"},
		"EK huge":           {edit: func(p *payloadMsg) { p.EKPublic = make([]byte, maxPublicSize+1) }, want: "larger than"},
		"EK signs":          {edit: func(p *payloadMsg) { p.EKPublic = tpm2.Marshal(ekSign) }, want: "restricted decryption key"},
		"EK small RSA":      {edit: func(p *payloadMsg) { p.EKPublic = tpm2.Marshal(ekSmall) }, want: "RSA key of 1024 bits"},
		"EK symmetric":      {edit: func(p *payloadMsg) { p.EKPublic = tpm2.Marshal(symKey) }, want: "neither RSA nor ECC"},
		"AK is the EK":      {edit: func(p *payloadMsg) { p.AKPublic = p.EKPublic }, want: "restricted signing key"},
		"AK unrestricted":   {edit: func(p *payloadMsg) { p.AKPublic = tpm2.Marshal(akUnrestricted) }, want: "restricted signing key"},
		"AK movable":        {edit: func(p *payloadMsg) { p.AKPublic = tpm2.Marshal(akMovable) }, want: "fixed to its TPM"},
		"AK SHA-1 name":     {edit: func(p *payloadMsg) { p.AKPublic = tpm2.Marshal(akSHA1) }, want: "AK name algorithm"},
		"AK imported":       {edit: func(p *payloadMsg) { p.AKPublic = tpm2.Marshal(akImported) }, want: "generated in"},
		"AK off the curve":  {edit: func(p *payloadMsg) { p.AKPublic = tpm2.Marshal(akBadPoint) }, want: "ECC key"},
		"cert garbage":      {edit: func(p *payloadMsg) { p.EKCert = []byte("garbage") }, want: "EK certificate"},
		"cert huge":         {edit: func(p *payloadMsg) { p.EKCert = make([]byte, maxCertSize+1) }, want: "larger than"},
		"cert of other key": {edit: func(p *payloadMsg) { p.EKCert = otherCert(t) }, want: "does not match"},
	} {
		t.Run(name, func(t *testing.T) {
			b := tc.raw
			if tc.edit != nil {
				p := fixtureMsg(t)
				tc.edit(&p)
				b = encode(t, p)
			}
			_, err := parsePayload(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			// The server refuses it before any challenge.
			_, err = fixtureServer(t).Attest(context.Background(), td, b, neverCalled(t))
			mustReject(t, err, tc.want)
		})
	}
}

// otherCert returns a certificate of a key that is no TPM's.
func otherCert(t *testing.T) []byte {
	ca := testca.New(t, td)
	return ca.Cert().Raw
}

func TestAttestResponses(t *testing.T) {
	ctx := context.Background()
	srv := fixtureServer(t, 0)
	for name, tc := range map[string]struct {
		answer []byte
		err    error
		want   string
	}{
		"garbage":       {answer: []byte("garbage"), want: "response is not valid"},
		"empty":         {answer: nil, want: "response is empty"},
		"huge":          {answer: bytes.Repeat([]byte(" "), attest.MaxNodePayload+1), want: "larger than"},
		"unknown field": {answer: []byte(`{"proof":"","secret":"AA=="}`), want: "unknown field"},
		"wrong proof":   {answer: []byte(`{"proof":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`), want: "did not activate the credential"},
		"no proof":      {answer: []byte(`{}`), want: "did not activate the credential"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := srv.Attest(ctx, td, fixture(t), func(_ context.Context, ch []byte) ([]byte, error) {
				var m challengeMsg
				if err := decodeJSON(ch, &m, "challenge"); err != nil {
					t.Errorf("challenge: %v", err)
				}
				if m.Audience != "spiffe://example.org/spiffekit/server" || len(m.Nonce) != NonceSize ||
					len(m.PCRs) != 1 || len(m.CredentialBlob) == 0 || len(m.EncryptedSecret) != 256 {
					t.Errorf("challenge %+v", m)
				}
				return tc.answer, nil
			})
			mustReject(t, err, tc.want)
		})
	}
	// A challenger that fails is the exchange's failure, not the node's.
	boom := errors.New("stream closed")
	_, err := srv.Attest(ctx, td, fixture(t), func(context.Context, []byte) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) || errors.Is(err, attest.ErrNodeRejected) {
		t.Errorf("got %v, want the challenger's error, not a rejection", err)
	}
	// Arguments.
	if _, err := srv.Attest(ctx, td, fixture(t), nil); err == nil {
		t.Error("no challenger accepted")
	}
	if _, err := srv.Attest(ctx, spiffeid.TrustDomain{}, fixture(t), neverCalled(t)); err == nil {
		t.Error("no trust domain accepted")
	}
}

func TestVerifyCertWithoutAllowList(t *testing.T) {
	// A CA that did not issue the fixture's certificate, and no hash.
	ca := testca.New(t, td)
	srv := newServer(t, ServerConfig{ManufacturerCAs: []*x509.Certificate{ca.Cert()}, Now: func() time.Time { return time.Now() }})
	_, err := srv.Attest(context.Background(), td, fixture(t), neverCalled(t))
	mustReject(t, err, "does not verify")
	// No certificate at all.
	p := fixtureMsg(t)
	p.EKCert = nil
	_, err = srv.Attest(context.Background(), td, encode(t, p), neverCalled(t))
	mustReject(t, err, "no EK certificate")
}

func TestNewServer(t *testing.T) {
	root := testca.New(t, td)
	inter := root.NewIntermediate(t)
	for name, tc := range map[string]struct {
		c    ServerConfig
		want string
	}{
		"nothing trusted":   {c: ServerConfig{}, want: "no TPM would be trusted"},
		"nil CA":            {c: ServerConfig{ManufacturerCAs: []*x509.Certificate{nil}}, want: "nil"},
		"intermediate only": {c: ServerConfig{ManufacturerCAs: []*x509.Certificate{inter.Cert()}}, want: "no root"},
		"short hash":        {c: ServerConfig{EKHashes: []string{"abcd"}}, want: "not a lower-case hexadecimal SHA-256"},
		"upper-case hash":   {c: ServerConfig{EKHashes: []string{strings.Repeat("AB", 32)}}, want: "lower-case"},
		"PCR 24":            {c: ServerConfig{EKHashes: []string{strings.Repeat("ab", 32)}, PCRs: []int{24}}, want: "PCR 24"},
		"PCR twice":         {c: ServerConfig{EKHashes: []string{strings.Repeat("ab", 32)}, PCRs: []int{1, 1}}, want: "twice"},
		"too many PCRs":     {c: ServerConfig{EKHashes: []string{strings.Repeat("ab", 32)}, PCRs: make([]int, 25)}, want: "more than 24"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewServer(tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	s := newServer(t, ServerConfig{ManufacturerCAs: []*x509.Certificate{inter.Cert(), root.Cert()}})
	if s.Type() != "tpm" {
		t.Errorf("Type %q", s.Type())
	}
}

func TestLoadServer(t *testing.T) {
	dir := t.TempDir()
	root := testca.New(t, td)
	path := filepath.Join(dir, "cas.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert().Raw}), 0o644)
	if _, err := LoadServer(FileConfig{ManufacturerCABundles: []string{path}}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadServer(FileConfig{ManufacturerCABundles: []string{filepath.Join(dir, "missing.pem")}}); err == nil {
		t.Error("missing file accepted")
	}
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not PEM"), 0o644)
	if _, err := LoadServer(FileConfig{ManufacturerCABundles: []string{bad}}); err == nil {
		t.Error("bad file accepted")
	}
}

func TestEKHash(t *testing.T) {
	if _, err := EKHash("not a key"); err == nil {
		t.Error("EKHash of a string")
	}
}

func TestClientRefusesChallenges(t *testing.T) {
	// These are refused before the TPM is opened.
	c, err := NewClient(ClientConfig{TrustDomain: td, Open: func() (transport.TPMCloser, error) {
		t.Error("TPM opened")
		return nil, errors.New("no")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Type() != "tpm" {
		t.Errorf("Type %q", c.Type())
	}
	good := challengeMsg{Version: 1, Audience: "spiffe://example.org/spiffekit/server", CredentialBlob: []byte{1}, EncryptedSecret: []byte{1}}
	for name, tc := range map[string]struct {
		edit func(*challengeMsg)
		want string
	}{
		"version":      {edit: func(m *challengeMsg) { m.Version = 0 }, want: "version 0"},
		"other server": {edit: func(m *challengeMsg) { m.Audience = "spiffe://other.example/spiffekit/server" }, want: "not answered"},
		"no blob":      {edit: func(m *challengeMsg) { m.CredentialBlob = nil }, want: "credential"},
		"huge secret":  {edit: func(m *challengeMsg) { m.EncryptedSecret = make([]byte, maxBlobSize+1) }, want: "credential"},
		"bad PCR":      {edit: func(m *challengeMsg) { m.PCRs = []int{-1} }, want: "PCR -1"},
		"short nonce":  {edit: func(m *challengeMsg) { m.PCRs, m.Nonce = []int{0}, []byte{1} }, want: "nonce of 1 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			m := good
			tc.edit(&m)
			_, err := c.Respond(context.Background(), encode(t, m))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := c.Respond(context.Background(), []byte("{")); err == nil {
		t.Error("malformed challenge answered")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Respond(ctx, encode(t, good)); !errors.Is(err, context.Canceled) {
		t.Errorf("Respond after cancel: %v", err)
	}
	if _, err := c.Payload(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Payload after cancel: %v", err)
	}
	if _, err := NewClient(ClientConfig{}); err == nil {
		t.Error("client without trust domain")
	}
}

func TestClientWithoutTPM(t *testing.T) {
	c, err := NewClient(ClientConfig{TrustDomain: td, Device: filepath.Join(t.TempDir(), "tpmrm0")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Payload(context.Background()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Payload: %v", err)
	}
	msg := challengeMsg{Version: 1, Audience: "spiffe://example.org/spiffekit/server", CredentialBlob: []byte{1}, EncryptedSecret: []byte{1}}
	if _, err := c.Respond(context.Background(), encode(t, msg)); err == nil {
		t.Error("Respond without a TPM")
	}
}

func TestOpenDevice(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := OpenDevice(file); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("regular file: %v", err)
	}
	// A socket that answers with a response of an impossible size.
	sock := filepath.Join(dir, "tpm.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		c.Read(buf)
		c.Write([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
		c.Read(buf) // until the client closes
	}()
	d, err := OpenDevice(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Send([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 0x7b}); err == nil || !strings.Contains(err.Error(), "response of") {
		t.Errorf("Send: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	<-done
	if _, err := d.Send(nil); err == nil {
		t.Error("Send after Close")
	}
	if err := d.Close(); err == nil {
		t.Error("second Close")
	}
}

func TestTCGAttributes(t *testing.T) {
	if got := tcgAttributes(testca.New(t, td).Cert()); len(got) != 0 {
		t.Errorf("attributes of a certificate without them: %v", got)
	}
	c, err := x509.ParseCertificate(fixtureMsg(t).EKCert)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(tcgAttributes(c), " ")
	if got != "manufacturer:id:00001014 model:swtpm version:id:20191023" {
		t.Errorf("attributes %q", got)
	}
}

func TestProofBindsEverything(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, SecretSize)
	aud, _ := audienceOf(td)
	otherAud, _ := audienceOf(otherTD)
	base := proofOf(secret, td, aud, []byte("blob"))
	for name, p := range map[string][]byte{
		"secret":   proofOf(bytes.Repeat([]byte{8}, SecretSize), td, aud, []byte("blob")),
		"td":       proofOf(secret, otherTD, aud, []byte("blob")),
		"audience": proofOf(secret, td, otherAud, []byte("blob")),
		"blob":     proofOf(secret, td, aud, []byte("blob2")),
	} {
		if bytes.Equal(p, base) {
			t.Errorf("the proof does not depend on the %s", name)
		}
	}
	if _, err := json.Marshal(base); err != nil {
		t.Fatal(err)
	}
}

func TestVerifySignature(t *testing.T) {
	digest := bytes.Repeat([]byte{3}, 32)
	ecKey := testca.NewECKey(t)
	r, s, _ := ecdsa.Sign(rand.Reader, ecKey, digest)
	ecSig := &tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
		Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()}})}
	if err := verifySignature(&ecKey.PublicKey, digest, ecSig); err != nil {
		t.Errorf("ECDSA: %v", err)
	}
	if err := verifySignature(&ecKey.PublicKey, bytes.Repeat([]byte{4}, 32), ecSig); err == nil {
		t.Error("ECDSA over another digest")
	}
	ecSHA1 := &tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
		Hash: tpm2.TPMAlgSHA1, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()}, SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()}})}
	if err := verifySignature(&ecKey.PublicKey, digest, ecSHA1); err == nil || !strings.Contains(err.Error(), "not SHA-256") {
		t.Errorf("ECDSA with SHA-1: %v", err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest)
	rsaSig := &tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, &tpm2.TPMSSignatureRSA{
		Hash: tpm2.TPMAlgSHA256, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: sig}})}
	if err := verifySignature(&rsaKey.PublicKey, digest, rsaSig); err != nil {
		t.Errorf("RSASSA: %v", err)
	}
	if err := verifySignature(&rsaKey.PublicKey, bytes.Repeat([]byte{4}, 32), rsaSig); err == nil {
		t.Error("RSASSA over another digest")
	}
	rsaSHA1 := &tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, &tpm2.TPMSSignatureRSA{
		Hash: tpm2.TPMAlgSHA1, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: sig}})}
	if err := verifySignature(&rsaKey.PublicKey, digest, rsaSHA1); err == nil {
		t.Error("RSASSA with SHA-1")
	}
	// An algorithm that is not the key's.
	if err := verifySignature(&rsaKey.PublicKey, digest, ecSig); err == nil {
		t.Error("ECDSA signature for an RSA key")
	}
	if err := verifySignature(&ecKey.PublicKey, digest, rsaSig); err == nil {
		t.Error("RSASSA signature for an ECC key")
	}
	if err := verifySignature("key", digest, rsaSig); err == nil {
		t.Error("a key of no type")
	}
}

func TestRejectError(t *testing.T) {
	cause := errors.New("cause")
	err := reject(cause, "x %d", 1)
	if !errors.Is(err, cause) || !errors.Is(err, attest.ErrNodeRejected) || err.Error() != "tpm: x 1" {
		t.Errorf("reject: %v", err)
	}
	if serial(&x509.Certificate{}) != "none" {
		t.Error("serial of no serial")
	}
}

func TestCharDevice(t *testing.T) {
	// /dev/null takes the command and answers nothing.
	d, err := OpenDevice("/dev/null")
	if err != nil {
		t.Skipf("no /dev/null: %v", err)
	}
	defer d.Close()
	if _, err := d.Send([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 0x7b}); err == nil {
		t.Error("a response from /dev/null")
	}
}

// fakeTPM serves raw TPM responses on a unix socket: each command read is
// answered with the next of rsps (the last one again when they run out).
// It returns the socket and a function giving the number of commands read.
func fakeTPM(t *testing.T, rsps ...[]byte) (string, func() int) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "tpm.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
			mu.Lock()
			rsp := rsps[min(n, len(rsps)-1)]
			n++
			mu.Unlock()
			c.Write(rsp)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return sock, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestSendRetries(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	cmd := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 1, 0x7b} // GetRandom's header
	retry := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x22}
	yielded := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x08}
	ok := []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0}
	sock, count := fakeTPM(t, retry, yielded, ok)
	d, err := OpenDevice(sock)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err := d.Send(cmd)
	d.Close()
	if err != nil || !bytes.Equal(rsp, ok) || count() != 3 {
		t.Fatalf("Send: %x, %v after %d commands; want the third response", rsp, err, count())
	}

	// A TPM that never stops asking: the answer, after a bounded number.
	sock, count = fakeTPM(t, retry)
	d, err = OpenDevice(sock)
	if err != nil {
		t.Fatal(err)
	}
	rsp, err = d.Send(cmd)
	d.Close()
	if err != nil || !bytes.Equal(rsp, retry) || count() != maxRetries+1 {
		t.Fatalf("Send: %x, %v after %d commands; want TPM_RC_RETRY after %d", rsp, err, count(), maxRetries+1)
	}
}
