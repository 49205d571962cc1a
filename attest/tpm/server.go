package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// maxSelectors bounds the selectors of one node.
const maxSelectors = 64

// maxPEMFile bounds a CA bundle file.
const maxPEMFile = 1 << 20

// ServerConfig configures [NewServer]. A TPM is trusted if its EK
// certificate chains to ManufacturerCAs or its EK hash is in EKHashes;
// at least one of the two is required.
type ServerConfig struct {
	// ManufacturerCAs are the CA certificates EK certificates are checked
	// against: the self-signed ones are roots, the others intermediates
	// (TPMs store the EK certificate alone, not its chain).
	ManufacturerCAs []*x509.Certificate

	// EKHashes lists TPMs trusted by their EK public key, whatever their
	// certificate: [EKHash] values, lower-case hexadecimal SHA-256.
	EKHashes []string

	// PCRs, if not empty, are the PCRs of the SHA-256 bank each node must
	// quote (signed by its AK, over a fresh nonce), reported as selectors.
	PCRs []int

	// Now gives the current time, at which EK certificates must be valid.
	// Nil means time.Now.
	Now func() time.Time
}

// Server is the server side of tpm attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use.
type Server struct {
	roots, inters *x509.CertPool
	hashes        map[string]bool
	pcrs          []int
	now           func() time.Time
}

var _ attest.NodeAttestor = (*Server)(nil)

// NewServer returns a server that admits the TPMs c trusts. It fails if c
// trusts none, or has a nil certificate, a malformed EK hash or a bad
// PCR list. Changing c afterwards has no effect.
func NewServer(c ServerConfig) (*Server, error) {
	if len(c.ManufacturerCAs) == 0 && len(c.EKHashes) == 0 {
		return nil, errors.New("tpm: neither manufacturer CAs nor EK hashes: no TPM would be trusted")
	}
	s := &Server{roots: x509.NewCertPool(), inters: x509.NewCertPool(), hashes: map[string]bool{},
		pcrs: slices.Clone(c.PCRs), now: c.Now}
	var roots int
	for i, ca := range c.ManufacturerCAs {
		if ca == nil {
			return nil, fmt.Errorf("tpm: manufacturer CA %d is nil", i)
		}
		if bytes.Equal(ca.RawSubject, ca.RawIssuer) && ca.CheckSignatureFrom(ca) == nil {
			s.roots.AddCert(ca)
			roots++
		} else {
			s.inters.AddCert(ca)
		}
	}
	if len(c.ManufacturerCAs) > 0 && roots == 0 {
		return nil, errors.New("tpm: the manufacturer CAs hold no root (self-signed) certificate")
	}
	for _, h := range c.EKHashes {
		if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size || strings.ToLower(h) != h {
			return nil, fmt.Errorf("tpm: EK hash %q is not a lower-case hexadecimal SHA-256", h)
		}
		s.hashes[h] = true
	}
	if err := checkPCRs(c.PCRs); err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// FileConfig configures [LoadServer] from files, as the server program's
// configuration does.
type FileConfig struct {
	// ManufacturerCABundles are PEM files of manufacturer CA certificates.
	ManufacturerCABundles []string
	// EKHashes, PCRs: as in [ServerConfig].
	EKHashes []string
	PCRs     []int
}

// LoadServer returns a server trusting the CERTIFICATE blocks of the PEM
// files (at most 1 MiB each) and the EK hashes of c.
func LoadServer(c FileConfig) (*Server, error) {
	sc := ServerConfig{EKHashes: c.EKHashes, PCRs: c.PCRs}
	for _, path := range c.ManufacturerCABundles {
		b, err := atomicfile.Read(path, maxPEMFile)
		if err != nil {
			return nil, fmt.Errorf("tpm: reading manufacturer CA bundle: %w", err)
		}
		certs, err := pemutil.ParseCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("tpm: manufacturer CA bundle %s: %w", path, err)
		}
		sc.ManufacturerCAs = append(sc.ManufacturerCAs, certs...)
	}
	return NewServer(sc)
}

// Type returns "tpm".
func (s *Server) Type() string { return Type }

// evidence is a parsed payload.
type evidence struct {
	ekCert *x509.Certificate // nil if none was sent
	ekPub  *tpm2.TPMTPublic
	ekKey  any
	akPub  *tpm2.TPMTPublic
	akKey  any
	akName []byte
}

// parsePayload decodes and checks the agent's payload: well formed, an EK
// that is a restricted decryption key, an AK that is a restricted signing
// key fixed to its TPM, and a certificate, if any, of the EK's key.
func parsePayload(b []byte) (*evidence, error) {
	var p payloadMsg
	if err := decodeJSON(b, &p, "payload"); err != nil {
		return nil, err
	}
	if p.Version != wireVersion {
		return nil, fmt.Errorf("payload of version %d, not %d", p.Version, wireVersion)
	}
	return checkKeys(&p)
}

// checkKeys parses and checks the EK and AK of a payload, and its EK
// certificate if any.
func checkKeys(p *payloadMsg) (*evidence, error) {
	ev := &evidence{}
	var err error
	if ev.ekPub, err = parsePublic(p.EKPublic, "EK public area"); err != nil {
		return nil, err
	}
	if ev.akPub, err = parsePublic(p.AKPublic, "AK public area"); err != nil {
		return nil, err
	}
	if ev.ekKey, err = publicKey(ev.ekPub); err != nil {
		return nil, fmt.Errorf("EK: %w", err)
	}
	if a := ev.ekPub.ObjectAttributes; !a.Restricted || !a.Decrypt || a.SignEncrypt || !a.FixedTPM {
		return nil, errors.New("EK is not a restricted decryption key fixed to its TPM")
	}
	if ev.akKey, err = publicKey(ev.akPub); err != nil {
		return nil, fmt.Errorf("AK: %w", err)
	}
	// The TPM activates a credential only for a loaded object of this
	// name, which covers these attributes: the TPM vouches that the AK is
	// its own, made in it and never to leave it, and signs only what the
	// TPM itself produced (a quote).
	if a := ev.akPub.ObjectAttributes; !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin ||
		!a.Restricted || !a.SignEncrypt || a.Decrypt {
		return nil, errors.New("AK is not a restricted signing key generated in and fixed to its TPM")
	}
	// A name of a weak hash could be shared by another object.
	switch ev.akPub.NameAlg {
	case tpm2.TPMAlgSHA256, tpm2.TPMAlgSHA384, tpm2.TPMAlgSHA512:
	default:
		return nil, fmt.Errorf("AK name algorithm %#x is not SHA-256, SHA-384 or SHA-512", uint16(ev.akPub.NameAlg))
	}
	name, err := tpm2.ObjectName(ev.akPub)
	if err != nil {
		return nil, fmt.Errorf("AK name: %w", err)
	}
	ev.akName = name.Buffer
	if len(p.EKCert) > 0 {
		if len(p.EKCert) > maxCertSize {
			return nil, fmt.Errorf("EK certificate is larger than %d bytes", maxCertSize)
		}
		if ev.ekCert, err = x509.ParseCertificate(p.EKCert); err != nil {
			return nil, fmt.Errorf("EK certificate: %w", err)
		}
		if !equalKeys(ev.ekKey, ev.ekCert.PublicKey) {
			return nil, errors.New("EK public area does not match the EK certificate's key")
		}
	}
	return ev, nil
}

// publicKey returns the key of a TPMT_PUBLIC, checked: RSA of 2048 to
// 4096 bits with exponent 65537, or ECC on NIST P-256, P-384 or P-521.
func publicKey(pub *tpm2.TPMTPublic) (any, error) {
	switch pub.Type {
	case tpm2.TPMAlgRSA, tpm2.TPMAlgECC:
	default:
		return nil, fmt.Errorf("key of type %#x, neither RSA nor ECC", uint16(pub.Type))
	}
	k, err := tpm2.Pub(*pub)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		parms, _ := pub.Parameters.RSADetail()
		bits := k.N.BitLen()
		if bits < 2048 || bits > 4096 || int(parms.KeyBits) != bits || k.E != 65537 {
			return nil, fmt.Errorf("RSA key of %d bits (%d declared), exponent %d", bits, parms.KeyBits, k.E)
		}
	case *ecdsa.PublicKey:
		if _, err := k.ECDH(); err != nil {
			return nil, fmt.Errorf("ECC key: %w", err)
		}
	}
	return k, nil
}

// Attest checks the payload, sends one challenge (a credential for the AK,
// encrypted to the EK, and a nonce to quote if PCRs are configured), and
// admits the node if the answer proves the credential was activated by
// the TPM that holds both keys (see the package documentation).
//
// The agent ID is spiffe://<td>/spiffekit/agent/tpm/<EK hash>, and the
// agent can re-attest: the EK identifies the machine. The selectors, all
// of type "tpm", are:
//
//	ek_hash:<hex>                 the EK hash ([EKHash])
//	ek_cert:trusted:<bool>        whether the EK certificate chains to a manufacturer CA
//	issuer:cn:<common name>       the EK certificate's issuer, when it chains
//	ca:fingerprint:<hex>          SHA-256 of each CA certificate of every verified chain
//	manufacturer:<id>             TPM manufacturer, model and firmware version from the
//	model:<model>                 certificate's subject alternative name (TCG attributes),
//	version:<version>             when it chains
//	pcr:sha256:<index>:<hex>      each configured PCR's quoted value
//
// Errors wrapping [attest.ErrNodeRejected]: the payload is malformed or
// too large; the EK is trusted neither by certificate nor by hash; the EK
// public area does not match the certificate; the AK is not a restricted
// signing key of its TPM; the answer does not prove the activation; the
// quote does not verify. An error from challenge is returned wrapped,
// without ErrNodeRejected.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("tpm: no trust domain")
	}
	if challenge == nil {
		return attest.NodeResult{}, errors.New("tpm: no challenger")
	}
	ev, err := parsePayload(payload)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	ekHash, err := EKHash(ev.ekKey)
	if err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	chains, certErr := s.verifyCert(ev.ekCert)
	if certErr != nil && !s.hashes[ekHash] {
		return attest.NodeResult{}, reject(certErr, "TPM of EK hash %s is not trusted: %v, and its EK hash is not allowed", ekHash, certErr)
	}
	audience, err := audienceOf(td)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm: %w", err)
	}

	// Credential activation: only a TPM holding the EK's private key can
	// recover the secret, and it releases it only for a loaded object of
	// the AK's name. A fresh secret for each exchange makes an old answer
	// worthless.
	ekKEM, err := tpm2.ImportEncapsulationKey(ev.ekPub)
	if err != nil {
		return attest.NodeResult{}, reject(err, "EK cannot encrypt a credential: %v", err)
	}
	secret := make([]byte, SecretSize)
	rand.Read(secret) // crypto/rand.Read never fails
	blob, encSecret, err := tpm2.CreateCredential(rand.Reader, ekKEM, ev.akName, secret)
	if err != nil {
		return attest.NodeResult{}, reject(err, "making the credential for the EK: %v", err)
	}
	ch := challengeMsg{Version: wireVersion, Audience: audience.String(), CredentialBlob: blob, EncryptedSecret: encSecret}
	if len(s.pcrs) > 0 {
		ch.PCRs = s.pcrs
		ch.Nonce = make([]byte, NonceSize)
		rand.Read(ch.Nonce)
	}
	chb, err := jsonMarshal(ch)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm: %w", err)
	}
	answer, err := challenge(ctx, chb)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm: challenge: %w", err)
	}
	var rsp responseMsg
	if err := decodeJSON(answer, &rsp, "response"); err != nil {
		return attest.NodeResult{}, reject(err, "%v", err)
	}
	if !hmac.Equal(rsp.Proof, proofOf(secret, td, audience, blob)) {
		return attest.NodeResult{}, reject(nil, "TPM of EK hash %s did not activate the credential: "+
			"the answer is not from the TPM that holds this EK and AK, or not for this exchange", ekHash)
	}
	var pcrValues [][]byte
	if len(s.pcrs) > 0 {
		if pcrValues, err = verifyQuote(ev, s.pcrs, ch.Nonce, &rsp); err != nil {
			return attest.NodeResult{}, reject(err, "TPM of EK hash %s: %v", ekHash, err)
		}
	}

	agentID, err := spiffeid.FromSegments(td, "spiffekit", "agent", "tpm", ekHash)
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("tpm: agent ID: %w", err)
	}
	sels := s.selectors(ekHash, ev.ekCert, chains, pcrValues)
	if sels.Len() > maxSelectors {
		return attest.NodeResult{}, reject(nil, "TPM of EK hash %s gives %d selectors, more than %d", ekHash, sels.Len(), maxSelectors)
	}
	return attest.NodeResult{AgentID: agentID, Selectors: sels, CanReattest: true}, nil
}

// oidSAN is the subject alternative name extension's.
var oidSAN = []int{2, 5, 29, 17}

// verifyCert verifies an EK certificate against the manufacturer CAs at
// the current time.
func (s *Server) verifyCert(c *x509.Certificate) ([][]*x509.Certificate, error) {
	if c == nil {
		return nil, errNoCert
	}
	// An EK certificate's subject is empty and its subject alternative
	// name, critical, holds the TPM's attributes as a directory name,
	// which crypto/x509 does not process; it is read by tcgAttributes.
	cc := *c
	cc.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(c.UnhandledCriticalExtensions), func(o asn1OID) bool {
		return o.Equal(oidSAN)
	})
	chains, err := cc.Verify(x509.VerifyOptions{
		Roots:         s.roots,
		Intermediates: s.inters,
		CurrentTime:   s.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("EK certificate of serial %s does not verify: %w", serial(c), err)
	}
	return chains, nil
}

// verifyQuote checks the quote of rsp: a TPMS_ATTEST of a quote, made by
// the TPM (magic), over nonce, of exactly the PCRs asked for, whose digest
// is that of the values sent, signed by the AK. It returns the values.
func verifyQuote(ev *evidence, pcrs []int, nonce []byte, rsp *responseMsg) ([][]byte, error) {
	if len(rsp.Quote) == 0 || len(rsp.Quote) > maxQuoteSize || len(rsp.Signature) == 0 || len(rsp.Signature) > maxSigSize {
		return nil, errors.New("no quote of a valid size")
	}
	if len(rsp.PCRValues) != len(pcrs) {
		return nil, fmt.Errorf("%d PCR values for %d PCRs", len(rsp.PCRValues), len(pcrs))
	}
	sig, err := unmarshalCanonical[tpm2.TPMTSignature](rsp.Signature)
	if err != nil {
		return nil, fmt.Errorf("quote signature: %w", err)
	}
	digest := sha256.Sum256(rsp.Quote)
	if err := verifySignature(ev.akKey, digest[:], sig); err != nil {
		return nil, fmt.Errorf("quote signature: %w", err)
	}
	att, err := unmarshalCanonical[tpm2.TPMSAttest](rsp.Quote)
	if err != nil {
		return nil, fmt.Errorf("quote: %w", err)
	}
	if att.Magic != tpm2.TPMGeneratedValue || att.Type != tpm2.TPMSTAttestQuote {
		return nil, errors.New("quote is not a TPM-generated quote")
	}
	if !bytes.Equal(att.ExtraData.Buffer, nonce) {
		return nil, errors.New("quote is not over this exchange's nonce (stale or replayed)")
	}
	info, err := att.Attested.Quote()
	if err != nil {
		return nil, fmt.Errorf("quote: %w", err)
	}
	want := pcrSelection(pcrs)
	if !bytes.Equal(tpm2.Marshal(&info.PCRSelect), tpm2.Marshal(&want)) {
		return nil, errors.New("quote is not of the PCRs asked for")
	}
	h := sha256.New()
	for i, v := range rsp.PCRValues {
		if len(v) != sha256.Size {
			return nil, fmt.Errorf("PCR %d value of %d bytes", pcrs[i], len(v))
		}
		h.Write(v)
	}
	if !bytes.Equal(h.Sum(nil), info.PCRDigest.Buffer) {
		return nil, errors.New("PCR values do not match the quoted digest")
	}
	return rsp.PCRValues, nil
}

// verifySignature verifies a TPM signature over digest with key: ECDSA or
// RSASSA, with SHA-256.
func verifySignature(key any, digest []byte, sig *tpm2.TPMTSignature) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if sig.SigAlg != tpm2.TPMAlgECDSA {
			return fmt.Errorf("signature algorithm %#x for an ECC key", uint16(sig.SigAlg))
		}
		e, err := sig.Signature.ECDSA()
		if err != nil {
			return err
		}
		if e.Hash != tpm2.TPMAlgSHA256 {
			return fmt.Errorf("signature hash %#x, not SHA-256", uint16(e.Hash))
		}
		r, ss := new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer)
		if !ecdsa.Verify(k, digest, r, ss) {
			return errors.New("signature does not verify with the AK")
		}
		return nil
	case *rsa.PublicKey:
		if sig.SigAlg != tpm2.TPMAlgRSASSA {
			return fmt.Errorf("signature algorithm %#x for an RSA key", uint16(sig.SigAlg))
		}
		r, err := sig.Signature.RSASSA()
		if err != nil {
			return err
		}
		if r.Hash != tpm2.TPMAlgSHA256 {
			return fmt.Errorf("signature hash %#x, not SHA-256", uint16(r.Hash))
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, r.Sig.Buffer); err != nil {
			return errors.New("signature does not verify with the AK")
		}
		return nil
	}
	return errors.New("AK of an unsupported type")
}

// unmarshalCanonical decodes a TPM structure that must be the whole of b,
// in canonical form.
func unmarshalCanonical[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte) (v *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed: %v", r)
		}
	}()
	v, err = tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(tpm2.Marshal(*v), b) {
		return nil, errors.New("not in canonical form")
	}
	return v, nil
}

// selectors returns the node's selectors.
func (s *Server) selectors(ekHash string, cert *x509.Certificate, chains [][]*x509.Certificate, pcrValues [][]byte) attest.Selectors {
	var sels []attest.Selector
	add := func(value string) {
		sel := attest.Selector{Type: Type, Value: value}
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	add("ek_hash:" + ekHash)
	add("ek_cert:trusted:" + strconv.FormatBool(len(chains) > 0))
	if len(chains) > 0 {
		if cn := cert.Issuer.CommonName; cn != "" {
			add("issuer:cn:" + cn)
		}
		for _, chain := range chains {
			for _, ca := range chain[1:] {
				fp := sha256.Sum256(ca.Raw)
				add("ca:fingerprint:" + hex.EncodeToString(fp[:]))
			}
		}
		for _, a := range tcgAttributes(cert) {
			add(a)
		}
	}
	for i, v := range pcrValues {
		add(fmt.Sprintf("pcr:sha256:%d:%s", s.pcrs[i], hex.EncodeToString(v)))
	}
	return attest.NewSelectors(sels...)
}

// serial returns the certificate's serial number in lower-case hexadecimal.
func serial(c *x509.Certificate) string {
	if c.SerialNumber == nil {
		return "none"
	}
	return c.SerialNumber.Text(16)
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "tpm: "+format, args...)
}
