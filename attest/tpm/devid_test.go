package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// devIDCA is a DevID CA made by the test: a root and an intermediate that
// issues DevID certificates.
type devIDCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
}

var testSerial = big.NewInt(100)

func newCert(t testing.TB, tmpl, parent *x509.Certificate, pub any, key crypto.Signer) *x509.Certificate {
	t.Helper()
	testSerial = new(big.Int).Add(testSerial, big.NewInt(1))
	tmpl.SerialNumber = testSerial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newDevIDCA(t testing.TB, name string) *devIDCA {
	t.Helper()
	ca := &devIDCA{rootKey: mustECKey(t), interKey: mustECKey(t)}
	ca.root = newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name + " root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, ca.rootKey.Public(), ca.rootKey)
	ca.inter = newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: name + " issuing"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, ca.root, ca.interKey.Public(), ca.rootKey)
	return ca
}

// issue returns a DevID certificate of key, named cn, valid from nb to
// na (zero: from an hour ago to tomorrow), and the intermediate.
func (ca *devIDCA) issue(t testing.TB, key any, cn string, nb, na time.Time) []*x509.Certificate {
	t.Helper()
	leaf := newCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: nb, NotAfter: na,
		KeyUsage: x509.KeyUsageDigitalSignature}, ca.inter, key, ca.interKey)
	return []*x509.Certificate{leaf, ca.inter}
}

// devIDKey is a DevID key made in a swtpm, as an operator's provisioning
// does: under the SRK, its TPM2B_PUBLIC and TPM2B_PRIVATE.
type devIDKey struct {
	public, private []byte // with their size prefix, as tpm2_create writes them
	key             any
}

// eccDevIDTemplate is a DevID key's: an unrestricted ECDSA P-256 signing
// key, made in and fixed to its TPM.
func eccDevIDTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256})},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
	}
}

// rsaDevIDTemplate is an unrestricted RSA-2048 signing key with no scheme
// of its own.
func rsaDevIDTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgRSA,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgNull},
			KeyBits:   2048,
		}),
	}
}

// provisionDevID creates a DevID key of template in sw, with password.
func provisionDevID(t testing.TB, sw *swtpmtest.TPM, template tpm2.TPMTPublic, password []byte) *devIDKey {
	t.Helper()
	dev, err := OpenDevice(sw.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	srk, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(srkTemplate(&template)),
	}.Execute(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(dev)
	r, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InSensitive:  tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{UserAuth: tpm2.TPM2BAuth{Buffer: password}}},
		InPublic:     tpm2.New2B(template),
	}.Execute(dev)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := r.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	key, err := tpm2.Pub(*pub)
	if err != nil {
		t.Fatal(err)
	}
	return &devIDKey{public: tpm2.Marshal(r.OutPublic), private: tpm2.Marshal(r.OutPrivate), key: key}
}

func newDevIDClient(t testing.TB, sw *swtpmtest.TPM, k *devIDKey, certs []*x509.Certificate, password []byte) *DevIDClient {
	t.Helper()
	c, err := NewDevIDClient(DevIDClientConfig{TrustDomain: td, Device: sw.Socket, DevIDCert: certs,
		DevIDPublic: k.public, DevIDPrivate: k.private, DevIDPassword: password})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newDevIDServer(t testing.TB, c DevIDServerConfig) *DevIDServer {
	t.Helper()
	s, err := NewDevIDServer(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func devIDPayloadOf(t *testing.T, c *DevIDClient) []byte {
	t.Helper()
	p, err := c.Payload(context.Background())
	if err != nil {
		t.Fatalf("Payload: %v", err)
	}
	return p
}

func decodeDevIDPayload(t *testing.T, b []byte) devIDPayloadMsg {
	t.Helper()
	var p devIDPayloadMsg
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// softwarePublic returns a TPMT_PUBLIC of a software ECDSA P-256 key with
// a DevID key's attributes, as an attacker would present it.
func softwarePublic(key *ecdsa.PublicKey) []byte {
	tmpl := eccDevIDTemplate()
	x, y := key.X.FillBytes(make([]byte, 32)), key.Y.FillBytes(make([]byte, 32))
	tmpl.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: x}, Y: tpm2.TPM2BECCParameter{Buffer: y}})
	return tpm2.Marshal(tmpl)
}

// softwareSignature signs msg with a software key as a TPMT_SIGNATURE.
func softwareSignature(t *testing.T, key *ecdsa.PrivateKey, msg []byte) []byte {
	t.Helper()
	d := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return tpm2.Marshal(&tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA,
		&tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA256, SignatureR: tpm2.TPM2BECCParameter{Buffer: r.Bytes()},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: s.Bytes()}})})
}

// TestDevIDSwtpm runs tpm_devid against software TPMs: a and b are
// manufactured by the CA the server trusts, each with a DevID key the
// test's DevID CA certified.
func TestDevIDSwtpm(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	ekCA, otherEKCA := swtpmtest.NewCA(t), swtpmtest.NewCA(t)
	tpms := swtpmtest.NewN(t, ekCA, ekCA, otherEKCA) // at once: swtpm_setup is slow; the third makes otherEKCA's certificates
	a, b := tpms[0], tpms[1]
	ca, otherCA := newDevIDCA(t, "devid"), newDevIDCA(t, "other")
	password := []byte("devid secret")
	ka, kb := provisionDevID(t, a, eccDevIDTemplate(), password), provisionDevID(t, b, eccDevIDTemplate(), nil)
	certsA, certsB := ca.issue(t, ka.key, "node-a", time.Time{}, time.Time{}), ca.issue(t, kb.key, "node-b", time.Time{}, time.Time{})
	ca1, cb := newDevIDClient(t, a, ka, certsA, password), newDevIDClient(t, b, kb, certsB, nil)
	// The server knows the root alone; the agent sends the intermediate.
	srv := newDevIDServer(t, DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}, EndorsementCAs: ekCA.Roots(t)})
	ctx := context.Background()
	answer := func(c *DevIDClient) attest.Challenger {
		return func(ctx context.Context, ch []byte) ([]byte, error) { return c.Respond(ctx, ch) }
	}

	t.Run("Attest", func(t *testing.T) {
		payload := devIDPayloadOf(t, ca1)
		res, err := srv.Attest(ctx, td, payload, answer(ca1))
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		fp := DevIDFingerprint(certsA[0])
		if want := "spiffe://example.org/spiffekit/agent/tpm_devid/" + fp; res.AgentID.String() != want {
			t.Errorf("agent ID %s, want %s", res.AgentID, want)
		}
		if !res.CanReattest {
			t.Error("CanReattest is false")
		}
		ek, err := x509.ParseCertificate(decodeDevIDPayload(t, payload).EKCert)
		if err != nil {
			t.Fatal(err)
		}
		ekHash, _ := EKHash(ek.PublicKey)
		for _, want := range []string{"subject:cn:node-a", "issuer:cn:devid issuing", "fingerprint:" + fp,
			"ca:fingerprint:" + DevIDFingerprint(ca.inter), "ca:fingerprint:" + DevIDFingerprint(ca.root),
			"serialnumber:" + certsA[0].SerialNumber.Text(16), "ek_hash:" + ekHash} {
			if !res.Selectors.Contains(attest.Selector{Type: DevIDType, Value: want}) {
				t.Errorf("selectors %v lack tpm_devid:%s", res.Selectors, want)
			}
		}
		again, err := srv.Attest(ctx, td, devIDPayloadOf(t, ca1), answer(ca1))
		if err != nil || again.AgentID != res.AgentID {
			t.Errorf("second attestation: %v, %v", again.AgentID, err)
		}
		other, err := srv.Attest(ctx, td, devIDPayloadOf(t, cb), answer(cb))
		if err != nil || other.AgentID == res.AgentID {
			t.Errorf("other node: %v, %v", other.AgentID, err)
		}
	})

	t.Run("RSADevIDAndFiles", func(t *testing.T) {
		// An RSA DevID key with no scheme of its own (RSASSA with SHA-256),
		// under the RSA SRK, read from files as the agent program does.
		k := provisionDevID(t, a, rsaDevIDTemplate(), nil)
		dir := t.TempDir()
		var pemCerts []byte
		for _, c := range ca.issue(t, k.key, "node-a-rsa", time.Time{}, time.Time{}) {
			pemCerts = append(pemCerts, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		files := DevIDFiles{CertPath: filepath.Join(dir, "devid.pem"), PrivPath: filepath.Join(dir, "devid.priv"), PubPath: filepath.Join(dir, "devid.pub")}
		for path, b := range map[string][]byte{files.CertPath: pemCerts, files.PrivPath: k.private, files.PubPath: k.public} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c, err := LoadDevIDClient(DevIDClientConfig{TrustDomain: td, Device: a.Socket}, files)
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.Attest(ctx, td, devIDPayloadOf(t, c), answer(c))
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		if !res.Selectors.Contains(attest.Selector{Type: DevIDType, Value: "subject:cn:node-a-rsa"}) {
			t.Errorf("selectors %v", res.Selectors)
		}
	})

	t.Run("WrongDevIDPassword", func(t *testing.T) {
		c := newDevIDClient(t, a, ka, certsA, []byte("wrong"))
		_, err := srv.Attest(ctx, td, devIDPayloadOf(t, c), answer(c))
		if err == nil || !strings.Contains(err.Error(), "certifying the DevID key") {
			t.Fatalf("got %v, want the TPM to refuse the DevID key", err)
		}
	})

	t.Run("UntrustedDevIDCA", func(t *testing.T) {
		c := newDevIDClient(t, a, ka, otherCA.issue(t, ka.key, "node-a", time.Time{}, time.Time{}), password)
		_, err := srv.Attest(ctx, td, devIDPayloadOf(t, c), neverCalled(t))
		mustReject(t, err, "does not verify")
	})

	t.Run("UntrustedEndorsementCA", func(t *testing.T) {
		s := newDevIDServer(t, DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}, EndorsementCAs: otherEKCA.Roots(t)})
		_, err := s.Attest(ctx, td, devIDPayloadOf(t, ca1), neverCalled(t))
		mustReject(t, err, "the TPM is not trusted")
	})

	t.Run("ExpiredDevIDCert", func(t *testing.T) {
		old := ca.issue(t, ka.key, "node-a", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
		c := newDevIDClient(t, a, ka, old, password)
		_, err := srv.Attest(ctx, td, devIDPayloadOf(t, c), neverCalled(t))
		mustReject(t, err, "expired")
		// And a valid certificate on a server whose clock is past it.
		s := newDevIDServer(t, DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}, EndorsementCAs: ekCA.Roots(t),
			Now: func() time.Time { return time.Now().Add(48 * time.Hour) }})
		_, err = s.Attest(ctx, td, devIDPayloadOf(t, ca1), neverCalled(t))
		mustReject(t, err, "expired")
	})

	t.Run("SoftwareKeyWithValidCert", func(t *testing.T) {
		soft := mustECKey(t)
		softCerts := ca.issue(t, soft.Public(), "node-a", time.Time{}, time.Time{})
		// The certificate of a software key, with the TPM's DevID public
		// area: refused before any challenge.
		p := decodeDevIDPayload(t, devIDPayloadOf(t, ca1))
		p.DevIDCerts = [][]byte{softCerts[0].Raw, softCerts[1].Raw}
		_, err := srv.Attest(ctx, td, encode(t, p), neverCalled(t))
		mustReject(t, err, "does not match the DevID certificate's key")
		// With a public area of the software key, claiming to be fixed to
		// the TPM: the TPM's AK certifies only what it holds (a's DevID),
		// so the software key's signature is not enough.
		p.DevIDPublic = softwarePublic(&soft.PublicKey)
		_, err = srv.Attest(ctx, td, encode(t, p), func(ctx context.Context, ch []byte) ([]byte, error) {
			b, err := ca1.Respond(ctx, ch)
			if err != nil {
				return nil, err
			}
			var c devIDChallengeMsg
			var r devIDResponseMsg
			if err := json.Unmarshal(ch, &c); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, err
			}
			r.DevIDSignature = softwareSignature(t, soft, devIDSigned(td, spiffeIDOf(t, c.Audience), c.Nonce))
			return encode(t, r), nil
		})
		mustReject(t, err, "certified another key")
		// A key that came into the TPM from outside (not made in it) is
		// refused whatever the TPM says of it.
		tmpl := eccDevIDTemplate()
		tmpl.ObjectAttributes.SensitiveDataOrigin = false
		pub, _ := tpm2.Unmarshal[tpm2.TPMTPublic](softwarePublic(&soft.PublicKey))
		pub.ObjectAttributes = tmpl.ObjectAttributes
		p.DevIDPublic = tpm2.Marshal(pub)
		_, err = srv.Attest(ctx, td, encode(t, p), neverCalled(t))
		mustReject(t, err, "not a signing key generated in and fixed to its TPM")
	})

	t.Run("DevIDOfAnotherTPM", func(t *testing.T) {
		// a's EK and AK, b's DevID (certified, genuinely in b): a's AK can
		// certify only a's own keys.
		p := decodeDevIDPayload(t, devIDPayloadOf(t, ca1))
		pb := decodeDevIDPayload(t, devIDPayloadOf(t, cb))
		p.DevIDCerts, p.DevIDPublic = pb.DevIDCerts, pb.DevIDPublic
		_, err := srv.Attest(ctx, td, encode(t, p), answer(ca1))
		mustReject(t, err, "certified another key")
		// And b cannot answer for a's EK.
		_, err = srv.Attest(ctx, td, encode(t, p), answer(cb))
		if err == nil || !strings.Contains(err.Error(), "activating the credential") {
			t.Fatalf("got %v, want b's TPM to fail the activation", err)
		}
	})

	t.Run("AnswerOfAnotherExchange", func(t *testing.T) {
		var bAnswer []byte
		if _, err := srv.Attest(ctx, td, devIDPayloadOf(t, cb), func(ctx context.Context, ch []byte) (r []byte, err error) {
			bAnswer, err = cb.Respond(ctx, ch)
			return bAnswer, err
		}); err != nil {
			t.Fatal(err)
		}
		_, err := srv.Attest(ctx, td, devIDPayloadOf(t, ca1), func(context.Context, []byte) ([]byte, error) { return bAnswer, nil })
		mustReject(t, err, "did not activate the credential")
	})

	t.Run("Replay", func(t *testing.T) {
		payload := devIDPayloadOf(t, ca1)
		var old devIDResponseMsg
		if _, err := srv.Attest(ctx, td, payload, func(ctx context.Context, ch []byte) ([]byte, error) {
			b, err := ca1.Respond(ctx, ch)
			if err == nil {
				err = json.Unmarshal(b, &old)
			}
			return b, err
		}); err != nil {
			t.Fatal(err)
		}
		_, err := srv.Attest(ctx, td, payload, func(context.Context, []byte) ([]byte, error) { return encode(t, old), nil })
		mustReject(t, err, "did not activate the credential")
		// A fresh proof with the old certification, then with the old
		// DevID signature.
		for _, tc := range []struct {
			edit func(*devIDResponseMsg)
			want string
		}{
			{func(r *devIDResponseMsg) { r.CertifyInfo, r.CertifySignature = old.CertifyInfo, old.CertifySignature }, "stale or replayed"},
			{func(r *devIDResponseMsg) { r.DevIDSignature = old.DevIDSignature }, "DevID signature does not verify"},
		} {
			_, err = srv.Attest(ctx, td, payload, func(ctx context.Context, ch []byte) ([]byte, error) {
				b, err := ca1.Respond(ctx, ch)
				if err != nil {
					return nil, err
				}
				var r devIDResponseMsg
				if err := json.Unmarshal(b, &r); err != nil {
					return nil, err
				}
				tc.edit(&r)
				return encode(t, r), nil
			})
			mustReject(t, err, tc.want)
		}
	})

	if os.Getenv("TPM_WRITE_FIXTURE") != "" {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile("testdata/devid_payload.json", devIDPayloadOf(t, ca1), 0o644)
	}

	t.Run("HierarchyPasswords", func(t *testing.T) {
		// b's owner and endorsement hierarchies get passwords: the client
		// needs them (SRK, EK, AK), and works with them. Last: b keeps them.
		dev, err := OpenDevice(b.Socket)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []tpm2.TPMHandle{tpm2.TPMRHOwner, tpm2.TPMRHEndorsement} {
			if _, err := (tpm2.HierarchyChangeAuth{AuthHandle: tpm2.AuthHandle{Handle: h, Auth: tpm2.PasswordAuth(nil)},
				NewAuth: tpm2.TPM2BAuth{Buffer: []byte("hierarchy " + strconv.Itoa(int(h)))}}).Execute(dev); err != nil {
				t.Fatal(err)
			}
		}
		dev.Close()
		if _, err := cb.Payload(ctx); err == nil {
			t.Fatal("Payload without the hierarchies' passwords")
		}
		c, err := NewDevIDClient(DevIDClientConfig{TrustDomain: td, Device: b.Socket, DevIDCert: certsB,
			DevIDPublic: kb.public, DevIDPrivate: kb.private,
			OwnerHierarchyPassword:       []byte("hierarchy " + strconv.Itoa(int(tpm2.TPMRHOwner))),
			EndorsementHierarchyPassword: []byte("hierarchy " + strconv.Itoa(int(tpm2.TPMRHEndorsement)))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Attest(ctx, td, devIDPayloadOf(t, c), answer(c)); err != nil {
			t.Fatalf("Attest: %v", err)
		}
	})

	t.Run("OtherTrustDomainRelay", func(t *testing.T) {
		// A server of another trust domain relaying our node's answer: the
		// node refuses its challenge.
		_, err := srv.Attest(ctx, otherTD, devIDPayloadOf(t, ca1), answer(ca1))
		if err == nil || !strings.Contains(err.Error(), "not answered") {
			t.Fatalf("got %v", err)
		}
	})
}

func spiffeIDOf(t *testing.T, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
