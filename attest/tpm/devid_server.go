package tpm

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DevIDServerConfig configures [NewDevIDServer]. Both CA lists are
// required.
type DevIDServerConfig struct {
	// DevIDCAs are the CA certificates DevID certificates are checked
	// against: the self-signed ones are roots, the others intermediates.
	DevIDCAs []*x509.Certificate

	// EndorsementCAs are the TPM manufacturers' CA certificates EK
	// certificates are checked against, as [ServerConfig].ManufacturerCAs.
	EndorsementCAs []*x509.Certificate

	// Now gives the current time, at which certificates must be valid.
	// Nil means time.Now.
	Now func() time.Time
}

// DevIDServer is the server side of tpm_devid attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use.
type DevIDServer struct {
	roots, inters []*x509.Certificate
	ek            *Server // checks EK certificates
	now           func() time.Time
}

var _ attest.NodeAttestor = (*DevIDServer)(nil)

// NewDevIDServer returns a server that admits nodes whose DevID
// certificate chains to c.DevIDCAs, held in a TPM whose EK certificate
// chains to c.EndorsementCAs. Changing c afterwards has no effect.
func NewDevIDServer(c DevIDServerConfig) (*DevIDServer, error) {
	if len(c.DevIDCAs) == 0 {
		return nil, errors.New("tpm_devid: no DevID CAs: no DevID would be trusted")
	}
	if len(c.EndorsementCAs) == 0 {
		return nil, errors.New("tpm_devid: no endorsement CAs: no TPM would be trusted")
	}
	s := &DevIDServer{now: c.Now}
	for i, ca := range c.DevIDCAs {
		if ca == nil {
			return nil, fmt.Errorf("tpm_devid: DevID CA %d is nil", i)
		}
		if bytes.Equal(ca.RawSubject, ca.RawIssuer) && ca.CheckSignatureFrom(ca) == nil {
			s.roots = append(s.roots, ca)
		} else {
			s.inters = append(s.inters, ca)
		}
	}
	if len(s.roots) == 0 {
		return nil, errors.New("tpm_devid: the DevID CAs hold no root (self-signed) certificate")
	}
	if s.now == nil {
		s.now = time.Now
	}
	ek, err := NewServer(ServerConfig{ManufacturerCAs: c.EndorsementCAs, Now: s.now})
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: endorsement CAs: %w", err)
	}
	s.ek = ek
	return s, nil
}

// DevIDFileConfig configures [LoadDevIDServer] with SPIRE's tpm_devid
// settings.
type DevIDFileConfig struct {
	// DevIDCAPath is a PEM file of the DevID CAs (devid_ca_path).
	DevIDCAPath string
	// EndorsementCAPath is a PEM file of the TPM manufacturers' CAs
	// (endorsement_ca_path).
	EndorsementCAPath string
}

// LoadDevIDServer returns a server trusting the CERTIFICATE blocks of the
// PEM files of c (at most 1 MiB each).
func LoadDevIDServer(c DevIDFileConfig) (*DevIDServer, error) {
	var sc DevIDServerConfig
	for _, f := range []struct {
		path, what string
		to         *[]*x509.Certificate
	}{{c.DevIDCAPath, "DevID CA", &sc.DevIDCAs}, {c.EndorsementCAPath, "endorsement CA", &sc.EndorsementCAs}} {
		b, err := atomicfile.Read(f.path, maxPEMFile)
		if err != nil {
			return nil, fmt.Errorf("tpm_devid: reading the %s bundle: %w", f.what, err)
		}
		if *f.to, err = pemutil.ParseCertificates(b); err != nil {
			return nil, fmt.Errorf("tpm_devid: %s bundle %s: %w", f.what, f.path, err)
		}
	}
	return NewDevIDServer(sc)
}

// Type returns "tpm_devid".
func (s *DevIDServer) Type() string { return DevIDType }

// devIDEvidence is a parsed tpm_devid payload.
type devIDEvidence struct {
	*evidence
	devIDCert   *x509.Certificate
	devIDInters []*x509.Certificate
	devIDPub    *tpm2.TPMTPublic
	devIDName   []byte
}

// parseDevIDPayload decodes and checks a tpm_devid payload: well formed;
// an EK certificate of the EK, a restricted decryption key; an AK that is
// a restricted signing key fixed to its TPM; a DevID key that is a signing
// key made in and fixed to its TPM, whose certificate is the first sent.
func parseDevIDPayload(b []byte) (*devIDEvidence, error) {
	var p devIDPayloadMsg
	if err := decodeJSON(b, &p, "payload"); err != nil {
		return nil, err
	}
	if p.Version != wireVersion {
		return nil, fmt.Errorf("payload of version %d, not %d", p.Version, wireVersion)
	}
	if len(p.EKCert) == 0 {
		return nil, errNoCert
	}
	ev, err := checkKeys(&payloadMsg{EKCert: p.EKCert, EKPublic: p.EKPublic, AKPublic: p.AKPublic})
	if err != nil {
		return nil, err
	}
	dev := &devIDEvidence{evidence: ev}
	switch {
	case len(p.DevIDCerts) == 0:
		return nil, errors.New("no DevID certificate")
	case len(p.DevIDCerts) > maxDevIDChain:
		return nil, fmt.Errorf("%d DevID certificates, more than %d", len(p.DevIDCerts), maxDevIDChain)
	}
	for i, der := range p.DevIDCerts {
		if len(der) > maxCertSize {
			return nil, fmt.Errorf("DevID certificate %d is larger than %d bytes", i, maxCertSize)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("DevID certificate %d: %w", i, err)
		}
		if i == 0 {
			dev.devIDCert = c
		} else {
			dev.devIDInters = append(dev.devIDInters, c)
		}
	}
	if dev.devIDPub, err = parsePublic(p.DevIDPublic, "DevID public area"); err != nil {
		return nil, err
	}
	key, err := checkDevIDPublic(dev.devIDPub)
	if err != nil {
		return nil, err
	}
	// The DevID key the TPM certifies and signs with must be the key the
	// certificate names: a certificate of a software key, presented with
	// a TPM key, proves nothing about the TPM.
	if !equalKeys(key, dev.devIDCert.PublicKey) {
		return nil, errors.New("DevID public area does not match the DevID certificate's key")
	}
	name, err := tpm2.ObjectName(dev.devIDPub)
	if err != nil {
		return nil, fmt.Errorf("DevID name: %w", err)
	}
	dev.devIDName = name.Buffer
	return dev, nil
}

// Attest checks the payload, sends one challenge (a credential for the AK,
// encrypted to the EK, and a nonce), and admits the node if the answer
// proves that the TPM holding the EK activated the credential, that its
// AK certified the DevID key over the nonce, and that the DevID key signed
// the exchange (see the package documentation).
//
// The agent ID is spiffe://<td>/spiffekit/agent/tpm_devid/<fingerprint>,
// the DevID certificate's [DevIDFingerprint], and the agent can
// re-attest. The selectors, all of type "tpm_devid", are SPIRE's and a
// few more:
//
//	subject:cn:<common name>      the DevID certificate's subject common name
//	issuer:cn:<common name>       its issuer's
//	ca:fingerprint:<sha1 hex>     each CA certificate of every verified chain
//	fingerprint:<sha1 hex>        the DevID certificate itself
//	serialnumber:<hex>            its serial number, lower-case hexadecimal
//	ek_hash:<hex>                 the TPM's EK hash ([EKHash])
//
// Errors wrapping [attest.ErrNodeRejected]: the payload is malformed or
// too large; the EK or DevID certificate does not verify (untrusted CA,
// expired, not yet valid); a public area does not match its certificate;
// a key is not of its TPM; the answer does not prove the activation, the
// certification or the signature. An error from challenge is returned
// wrapped, without ErrNodeRejected.
func (s *DevIDServer) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("tpm_devid: no trust domain")
	}
	if challenge == nil {
		return attest.NodeResult{}, errors.New("tpm_devid: no challenger")
	}
	dev, err := parseDevIDPayload(payload)
	if err != nil {
		return attest.NodeResult{}, rejectDevID(err, "%v", err)
	}
	fp := DevIDFingerprint(dev.devIDCert)
	chains, err := s.verifyDevIDCert(dev)
	if err != nil {
		return attest.NodeResult{}, rejectDevID(err, "%v", err)
	}
	if _, err := s.ek.verifyCert(dev.ekCert); err != nil {
		return attest.NodeResult{}, rejectDevID(err, "DevID %s: the TPM is not trusted: %v", fp, err)
	}
	ekHash, err := EKHash(dev.ekKey)
	if err != nil {
		return attest.NodeResult{}, rejectDevID(err, "%v", err)
	}
	audience, err := audienceOf(td)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm_devid: %w", err)
	}

	ekKEM, err := tpm2.ImportEncapsulationKey(dev.ekPub)
	if err != nil {
		return attest.NodeResult{}, rejectDevID(err, "EK cannot encrypt a credential: %v", err)
	}
	secret := make([]byte, SecretSize)
	rand.Read(secret) // crypto/rand.Read never fails
	blob, encSecret, err := tpm2.CreateCredential(rand.Reader, ekKEM, dev.akName, secret)
	if err != nil {
		return attest.NodeResult{}, rejectDevID(err, "making the credential for the EK: %v", err)
	}
	ch := devIDChallengeMsg{Version: wireVersion, Audience: audience.String(), CredentialBlob: blob,
		EncryptedSecret: encSecret, Nonce: make([]byte, NonceSize)}
	rand.Read(ch.Nonce)
	chb, err := jsonMarshal(ch)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm_devid: %w", err)
	}
	answer, err := challenge(ctx, chb)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm_devid: challenge: %w", err)
	}
	if err := dev.verifyResponse(answer, secret, td, audience, blob, ch.Nonce); err != nil {
		return attest.NodeResult{}, rejectDevID(err, "DevID %s in TPM of EK hash %s: %v", fp, ekHash, err)
	}

	agentID, err := spiffeid.FromSegments(td, "spiffekit", "agent", DevIDType, fp)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm_devid: agent ID: %w", err)
	}
	sels := devIDSelectors(dev.devIDCert, chains, ekHash)
	if sels.Len() > maxSelectors {
		return attest.NodeResult{}, rejectDevID(nil, "DevID %s gives %d selectors, more than %d", fp, sels.Len(), maxSelectors)
	}
	return attest.NodeResult{AgentID: agentID, Selectors: sels, CanReattest: true}, nil
}

// verifyDevIDCert verifies the DevID certificate against the DevID CAs at
// the current time, with the configured intermediates and those sent.
func (s *DevIDServer) verifyDevIDCert(dev *devIDEvidence) ([][]*x509.Certificate, error) {
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range s.roots {
		roots.AddCert(c)
	}
	for _, c := range append(s.inters[:len(s.inters):len(s.inters)], dev.devIDInters...) {
		inters.AddCert(c)
	}
	chains, err := dev.devIDCert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inters,
		CurrentTime:   s.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("DevID certificate of serial %s does not verify: %w", serial(dev.devIDCert), err)
	}
	return chains, nil
}

// verifyResponse checks a tpm_devid answer: the proof of the activated
// credential (the AK is in the TPM of the EK); the AK's certification of
// the DevID key over nonce (the DevID key is loaded in the AK's TPM,
// now); the DevID key's signature of the exchange (the node holds the
// key the certificate names).
func (dev *devIDEvidence) verifyResponse(answer, secret []byte, td spiffeid.TrustDomain, audience spiffeid.ID, blob, nonce []byte) error {
	var rsp devIDResponseMsg
	if err := decodeJSON(answer, &rsp, "response"); err != nil {
		return err
	}
	if !hmac.Equal(rsp.Proof, proofWithLabel(devIDProofLabel, secret, td, audience, blob)) {
		return errors.New("the TPM did not activate the credential: the answer is not from the TPM that holds this EK and AK, " +
			"or not for this exchange")
	}
	if err := verifyCertify(dev, rsp.CertifyInfo, rsp.CertifySignature, nonce); err != nil {
		return fmt.Errorf("certification of the DevID key: %w", err)
	}
	if len(rsp.DevIDSignature) == 0 || len(rsp.DevIDSignature) > maxSigSize {
		return errors.New("no DevID signature of a valid size")
	}
	sig, err := unmarshalCanonical[tpm2.TPMTSignature](rsp.DevIDSignature)
	if err != nil {
		return fmt.Errorf("DevID signature: %w", err)
	}
	if err := verifyDevIDSignature(dev.devIDCert.PublicKey, devIDSigned(td, audience, nonce), sig); err != nil {
		return fmt.Errorf("DevID %w", err)
	}
	return nil
}

// verifyCertify checks a TPM2_Certify of the DevID key by the AK: a
// TPM-generated attestation of a certification, over nonce, of the DevID
// key's name, signed by the AK.
func verifyCertify(dev *devIDEvidence, info, sigb, nonce []byte) error {
	if len(info) == 0 || len(info) > maxQuoteSize || len(sigb) == 0 || len(sigb) > maxSigSize {
		return errors.New("no certification of a valid size")
	}
	sig, err := unmarshalCanonical[tpm2.TPMTSignature](sigb)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	digest := sha256.Sum256(info)
	if err := verifySignature(dev.akKey, digest[:], sig); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	att, err := unmarshalCanonical[tpm2.TPMSAttest](info)
	if err != nil {
		return err
	}
	if att.Magic != tpm2.TPMGeneratedValue || att.Type != tpm2.TPMSTAttestCertify {
		return errors.New("not a TPM-generated certification")
	}
	if !bytes.Equal(att.ExtraData.Buffer, nonce) {
		return errors.New("not over this exchange's nonce (stale or replayed)")
	}
	ci, err := att.Attested.Certify()
	if err != nil {
		return err
	}
	if !bytes.Equal(ci.Name.Buffer, dev.devIDName) {
		return errors.New("the AK certified another key than the DevID key: the DevID key is not in this TPM")
	}
	return nil
}

// devIDSelectors returns a node's tpm_devid selectors.
func devIDSelectors(cert *x509.Certificate, chains [][]*x509.Certificate, ekHash string) attest.Selectors {
	var sels []attest.Selector
	add := func(value string) {
		sel := attest.Selector{Type: DevIDType, Value: value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	if cn := cert.Subject.CommonName; cn != "" {
		add("subject:cn:" + cn)
	}
	if cn := cert.Issuer.CommonName; cn != "" {
		add("issuer:cn:" + cn)
	}
	for _, chain := range chains {
		for _, ca := range chain[1:] {
			add("ca:fingerprint:" + DevIDFingerprint(ca))
		}
	}
	add("fingerprint:" + DevIDFingerprint(cert))
	add("serialnumber:" + serial(cert))
	add("ek_hash:" + ekHash)
	return attest.NewSelectors(sels...)
}

// rejectDevID returns an error wrapping attest.ErrNodeRejected and cause,
// which may be nil.
func rejectDevID(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "tpm_devid: "+format, args...)
}
