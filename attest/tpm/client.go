package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// TrustDomain is the trust domain of the servers the node attests to.
	// Required. The client answers only a challenge that names a server of
	// this trust domain, and its proof names both.
	TrustDomain spiffeid.TrustDomain

	// Device is the TPM: a character device, or a unix socket serving raw
	// TPM commands (see [OpenDevice]). Empty means [DefaultDevice].
	Device string

	// Open, if set, opens the TPM instead of Device.
	Open func() (transport.TPMCloser, error)
}

// Client is the agent side of tpm attestation. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use: it opens
// the TPM for each message and sends one exchange's commands at a time.
type Client struct {
	td       spiffeid.TrustDomain
	audience spiffeid.ID
	open     func() (transport.TPMCloser, error)
	mu       sync.Mutex
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client of the servers of c.TrustDomain. It opens
// nothing: the TPM is opened by each Payload and Respond.
func NewClient(c ClientConfig) (*Client, error) {
	if c.TrustDomain.IsZero() {
		return nil, errors.New("tpm: no trust domain")
	}
	audience, err := audienceOf(c.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	open := c.Open
	if open == nil {
		dev := c.Device
		if dev == "" {
			dev = DefaultDevice
		}
		open = func() (transport.TPMCloser, error) { return OpenDevice(dev) }
	}
	return &Client{td: c.TrustDomain, audience: audience, open: open}, nil
}

// Type returns "tpm".
func (c *Client) Type() string { return Type }

// Payload reads the EK certificate (if the TPM has one) and the EK's and
// AK's public areas, creating the AK (the same each time, see the package
// documentation).
func (c *Client) Payload(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := c.withKeys(func(_ transport.TPM, ek, ak *object) (err error) {
		out, err = json.Marshal(payloadMsg{Version: wireVersion, EKCert: ek.cert, EKPublic: ek.public, AKPublic: ak.public})
		return err
	})
	return out, err
}

// withKeys opens the TPM, loads the EK and creates the AK, and runs f with
// them, one caller at a time; the keys are flushed and the TPM closed once f
// returns.
func (c *Client) withKeys(f func(t transport.TPM, ek, ak *object) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.open()
	if err != nil {
		return err
	}
	defer t.Close()
	return withAttestationKeys(t, hierarchyAuth{}, func(ek, ak *object) error { return f(t, ek, ak) })
}

// withAttestationKeys loads the EK and creates an AK under it, with the
// hierarchies' auth, runs f with them, and flushes both.
func withAttestationKeys(t transport.TPM, auth hierarchyAuth, f func(ek, ak *object) error) error {
	ek, err := loadEK(t, auth)
	if err != nil {
		return err
	}
	defer ek.flush(t)
	ak, err := createAK(t, auth.endorsement)
	if err != nil {
		return err
	}
	defer ak.flush(t)
	return f(ek, ak)
}

// Respond activates the credential of challenge with the EK and AK, and
// answers with a proof of it, and a quote of the PCRs the server asks
// for. It refuses a challenge that names another server than those of the
// client's trust domain.
func (c *Client) Respond(ctx context.Context, challenge []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ch challengeMsg
	if err := decodeJSON(challenge, &ch, "challenge"); err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	switch {
	case ch.Version != wireVersion:
		return nil, fmt.Errorf("tpm: challenge of version %d, not %d", ch.Version, wireVersion)
	case ch.Audience != c.audience.String():
		return nil, fmt.Errorf("tpm: the challenge is for %q, not for a server of trust domain %q: not answered "+
			"(a server of another trust domain relaying it would get this node admitted there)", ch.Audience, c.td.Name())
	case len(ch.CredentialBlob) == 0 || len(ch.CredentialBlob) > maxBlobSize ||
		len(ch.EncryptedSecret) == 0 || len(ch.EncryptedSecret) > maxBlobSize:
		return nil, errors.New("tpm: challenge without a credential of a valid size")
	}
	if err := checkPCRs(ch.PCRs); err != nil {
		return nil, fmt.Errorf("tpm: challenge: %w", err)
	}
	if len(ch.PCRs) > 0 && len(ch.Nonce) != NonceSize {
		return nil, fmt.Errorf("tpm: challenge asks for a quote with a nonce of %d bytes, not %d", len(ch.Nonce), NonceSize)
	}

	var out []byte
	err := c.withKeys(func(t transport.TPM, ek, ak *object) error {
		act, err := tpm2.ActivateCredential{
			ActivateHandle: tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: tpm2.PasswordAuth(nil)},
			KeyHandle:      tpm2.AuthHandle{Handle: ek.handle, Name: ek.name, Auth: ek.auth()},
			CredentialBlob: tpm2.TPM2BIDObject{Buffer: ch.CredentialBlob},
			Secret:         tpm2.TPM2BEncryptedSecret{Buffer: ch.EncryptedSecret},
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("tpm: activating the credential: %w", err)
		}
		rsp := responseMsg{Proof: proofOf(act.CertInfo.Buffer, c.td, c.audience, ch.CredentialBlob)}
		if len(ch.PCRs) > 0 {
			if err := quote(t, ak, ch.PCRs, ch.Nonce, &rsp); err != nil {
				return err
			}
		}
		out, err = json.Marshal(rsp)
		return err
	})
	return out, err
}

// checkPCRs checks a list of PCR indices: distinct, each below MaxPCRs.
func checkPCRs(pcrs []int) error {
	if len(pcrs) > MaxPCRs {
		return fmt.Errorf("%d PCRs, more than %d", len(pcrs), MaxPCRs)
	}
	seen := make(map[int]bool, len(pcrs))
	for _, p := range pcrs {
		if p < 0 || p >= MaxPCRs {
			return fmt.Errorf("PCR %d is not one of 0-%d", p, MaxPCRs-1)
		}
		if seen[p] {
			return fmt.Errorf("PCR %d is asked twice", p)
		}
		seen[p] = true
	}
	return nil
}

// pcrSelection selects pcrs of the SHA-256 bank.
func pcrSelection(pcrs []int) tpm2.TPMLPCRSelection {
	u := make([]uint, len(pcrs))
	for i, p := range pcrs {
		u[i] = uint(p)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
		Hash:      tpm2.TPMAlgSHA256,
		PCRSelect: tpm2.PCClientCompatible.PCRs(u...),
	}}}
}

// quote reads pcrs and has the AK quote them over nonce.
func quote(t transport.TPM, ak *object, pcrs []int, nonce []byte, rsp *responseMsg) error {
	for _, p := range pcrs {
		r, err := tpm2.PCRRead{PCRSelectionIn: pcrSelection([]int{p})}.Execute(t)
		if err != nil {
			return fmt.Errorf("tpm: reading PCR %d: %w", p, err)
		}
		if len(r.PCRValues.Digests) != 1 {
			return fmt.Errorf("tpm: PCR %d of the SHA-256 bank is not allocated", p)
		}
		rsp.PCRValues = append(rsp.PCRValues, r.PCRValues.Digests[0].Buffer)
	}
	q, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      pcrSelection(pcrs),
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("tpm: quoting PCRs: %w", err)
	}
	rsp.Quote = q.Quoted.Bytes()
	rsp.Signature = tpm2.Marshal(&q.Signature)
	return nil
}

// object is a key loaded in the TPM.
type object struct {
	handle    tpm2.TPMHandle
	name      tpm2.TPM2BName
	public    []byte // TPMT_PUBLIC
	pub       *tpm2.TPMTPublic
	cert      []byte // the EK's certificate, if any
	transient bool
	// hierarchyAuth is the endorsement hierarchy's authorization, which
	// an EK of the default templates' policy asks for.
	hierarchyAuth []byte
}

// hierarchyAuth holds the authorization values of the TPM's hierarchies;
// empty, as they are unless an owner set them.
type hierarchyAuth struct {
	endorsement, owner []byte
}

// flush unloads a transient object.
func (o *object) flush(t transport.TPM) {
	if o.transient {
		tpm2.FlushContext{FlushHandle: o.handle}.Execute(t)
	}
}

// auth authorizes the EK's use in ActivateCredential: with its (empty)
// auth value when the EK allows it, else with the policy of the TCG's
// default EK templates, PolicySecret(TPM_RH_ENDORSEMENT).
func (o *object) auth() tpm2.Session {
	if o.pub.ObjectAttributes.UserWithAuth {
		return tpm2.PasswordAuth(nil)
	}
	return tpm2.Policy(o.pub.NameAlg, 16, func(t transport.TPM, handle tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(o.hierarchyAuth)},
			PolicySession: handle,
			NonceTPM:      nonceTPM,
		}.Execute(t)
		return err
	})
}

// createAK creates the AK, a primary key of the endorsement hierarchy,
// whose authorization is endorsementAuth.
func createAK(t transport.TPM, endorsementAuth []byte) (*object, error) {
	r, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(endorsementAuth)},
		InPublic:      tpm2.New2B(akTemplate),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm: creating the attestation key: %w", err)
	}
	o := &object{handle: r.ObjectHandle, name: r.Name, public: r.OutPublic.Bytes(), transient: true}
	if o.pub, err = r.OutPublic.Contents(); err != nil {
		o.flush(t)
		return nil, fmt.Errorf("tpm: attestation key: %w", err)
	}
	return o, nil
}

// loadEK finds the EK: the one its certificate in NV certifies (RSA, then
// ECC P-256, then ECC P-384), among the persistent EKs or else created
// from the TCG's default template for its type; with no certificate, the
// RSA EK of the default template. auth authorizes the hierarchies.
func loadEK(t transport.TPM, auth hierarchyAuth) (*object, error) {
	var cert *x509.Certificate
	var der []byte
	for _, idx := range []tpm2.TPMHandle{NVIndexRSAEKCert, NVIndexECCP256EKCert, NVIndexECCP384EKCert} {
		b, err := readNV(t, idx, auth.owner)
		if err != nil {
			return nil, err
		}
		if b == nil {
			continue
		}
		if cert, err = x509.ParseCertificate(b); err != nil {
			return nil, fmt.Errorf("tpm: EK certificate in NV index %#x: %w", uint32(idx), err)
		}
		der = b
		break
	}
	if cert != nil {
		if ek, err := persistentEK(t, cert.PublicKey); err != nil || ek != nil {
			if ek != nil {
				ek.cert, ek.hierarchyAuth = der, auth.endorsement
			}
			return ek, err
		}
	}
	template := tpm2.RSAEKTemplate
	if cert != nil {
		if _, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
			template = tpm2.ECCEKTemplate
		}
	}
	ek, err := createEK(t, template, auth.endorsement)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		key, err := tpm2.Pub(*ek.pub)
		if err != nil || !equalKeys(key, cert.PublicKey) {
			ek.flush(t)
			return nil, errors.New("tpm: the TPM has no EK of the key its EK certificate certifies (neither persistent nor of the default template)")
		}
		ek.cert = der
	}
	return ek, nil
}

// createEK creates an EK from template, in the endorsement hierarchy whose
// authorization is endorsementAuth.
func createEK(t transport.TPM, template tpm2.TPMTPublic, endorsementAuth []byte) (*object, error) {
	r, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(endorsementAuth)},
		InPublic:      tpm2.New2B(template),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm: creating the EK: %w", err)
	}
	o := &object{handle: r.ObjectHandle, name: r.Name, public: r.OutPublic.Bytes(), transient: true, hierarchyAuth: endorsementAuth}
	if o.pub, err = r.OutPublic.Contents(); err != nil {
		o.flush(t)
		return nil, fmt.Errorf("tpm: EK: %w", err)
	}
	return o, nil
}

// persistentEK returns the persistent restricted decryption key of the
// endorsement range whose public key is key, or nil if there is none.
func persistentEK(t transport.TPM, key any) (*object, error) {
	r, err := tpm2.GetCapability{
		Capability:    tpm2.TPMCapHandles,
		Property:      ekHandleFirst,
		PropertyCount: ekHandleLast - ekHandleFirst + 1,
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm: listing persistent handles: %w", err)
	}
	handles, err := r.CapabilityData.Data.Handles()
	if err != nil {
		return nil, fmt.Errorf("tpm: listing persistent handles: %w", err)
	}
	for _, h := range handles.Handle {
		if h < ekHandleFirst || h > ekHandleLast {
			continue
		}
		rp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(t)
		if err != nil {
			continue
		}
		pub, err := rp.OutPublic.Contents()
		if err != nil || !pub.ObjectAttributes.Restricted || !pub.ObjectAttributes.Decrypt {
			continue
		}
		k, err := tpm2.Pub(*pub)
		if err != nil || !equalKeys(k, key) {
			continue
		}
		return &object{handle: h, name: rp.Name, public: rp.OutPublic.Bytes(), pub: pub}, nil
	}
	return nil, nil
}

// equalKeys reports whether two public keys are the same.
func equalKeys(a, b any) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// readNV returns the certificate in NV index idx, trimmed to its DER
// length (some TPMs pad it), or nil if the index is not defined. An index
// readable by the owner alone is read with ownerAuth.
func readNV(t transport.TPM, idx tpm2.TPMHandle, ownerAuth []byte) ([]byte, error) {
	rp, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, nil
		}
		return nil, fmt.Errorf("tpm: reading NV index %#x: %w", uint32(idx), err)
	}
	nvPub, err := rp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("tpm: NV index %#x: %w", uint32(idx), err)
	}
	size := int(nvPub.DataSize)
	if size == 0 || size > maxCertSize {
		return nil, fmt.Errorf("tpm: NV index %#x holds %d bytes", uint32(idx), size)
	}
	auth := tpm2.AuthHandle{Handle: idx, Name: rp.NVName, Auth: tpm2.PasswordAuth(nil)}
	if !nvPub.Attributes.AuthRead && nvPub.Attributes.OwnerRead {
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(ownerAuth)}
	}
	const chunk = 512 // the least TPM_PT_NV_BUFFER_MAX of the PC Client profile
	data := make([]byte, 0, size)
	for len(data) < size {
		n := min(chunk, size-len(data))
		r, err := tpm2.NVRead{
			AuthHandle: auth,
			NVIndex:    tpm2.NamedHandle{Handle: idx, Name: rp.NVName},
			Size:       uint16(n),
			Offset:     uint16(len(data)),
		}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("tpm: reading NV index %#x: %w", uint32(idx), err)
		}
		if len(r.Data.Buffer) == 0 {
			return nil, fmt.Errorf("tpm: reading NV index %#x: empty read", uint32(idx))
		}
		data = append(data, r.Data.Buffer...)
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("tpm: NV index %#x does not hold a DER certificate: %w", uint32(idx), err)
	}
	return slices.Clip(raw.FullBytes), nil
}
