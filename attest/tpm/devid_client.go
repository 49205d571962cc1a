package tpm

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DevIDClientConfig configures [NewDevIDClient].
type DevIDClientConfig struct {
	// TrustDomain is the trust domain of the servers the node attests to.
	// Required.
	TrustDomain spiffeid.TrustDomain

	// Device and Open are as in [ClientConfig].
	Device string
	Open   func() (transport.TPMCloser, error)

	// DevIDCert is the DevID certificate, then any intermediate CA
	// certificates between it and the CA the server trusts. Required.
	DevIDCert []*x509.Certificate

	// DevIDPublic and DevIDPrivate are the DevID key as the TPM created it
	// under the storage root key (the TCG's SRK template of the key's
	// type, RSA-2048 or ECC P-256, with an empty unique field): its
	// TPM2B_PUBLIC and TPM2B_PRIVATE, with or without their size prefix
	// (tpm2_create's -u and -r files are with it). Required.
	DevIDPublic, DevIDPrivate []byte

	// DevIDPassword is the DevID key's authorization value;
	// EndorsementHierarchyPassword and OwnerHierarchyPassword those of the
	// TPM's hierarchies. Empty unless set when the key was made or the
	// TPM provisioned.
	DevIDPassword, EndorsementHierarchyPassword, OwnerHierarchyPassword []byte
}

// DevIDClient is the agent side of tpm_devid attestation. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use: it opens the
// TPM for each message and sends one exchange's commands at a time.
type DevIDClient struct {
	td        spiffeid.TrustDomain
	audience  spiffeid.ID
	open      func() (transport.TPMCloser, error)
	certs     [][]byte
	public    []byte // TPMT_PUBLIC
	pub       *tpm2.TPMTPublic
	private   []byte // TPM2B_PRIVATE contents
	devIDAuth []byte
	auth      hierarchyAuth
	mu        sync.Mutex
}

var _ attest.NodeAttestorClient = (*DevIDClient)(nil)

// NewDevIDClient returns a client of the servers of c.TrustDomain. It
// checks that the DevID key is one the server accepts (a signing key made
// in its TPM and fixed to it) and that the certificate is of its key, and
// opens nothing: the TPM is opened by each Payload and Respond.
func NewDevIDClient(c DevIDClientConfig) (*DevIDClient, error) {
	if c.TrustDomain.IsZero() {
		return nil, errors.New("tpm_devid: no trust domain")
	}
	audience, err := audienceOf(c.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: %w", err)
	}
	if len(c.DevIDCert) == 0 || c.DevIDCert[0] == nil {
		return nil, errors.New("tpm_devid: no DevID certificate")
	}
	if len(c.DevIDCert) > maxDevIDChain {
		return nil, fmt.Errorf("tpm_devid: %d DevID certificates, more than %d", len(c.DevIDCert), maxDevIDChain)
	}
	cl := &DevIDClient{td: c.TrustDomain, audience: audience, devIDAuth: c.DevIDPassword,
		auth: hierarchyAuth{endorsement: c.EndorsementHierarchyPassword, owner: c.OwnerHierarchyPassword}}
	for i, cert := range c.DevIDCert {
		if cert == nil {
			return nil, fmt.Errorf("tpm_devid: DevID certificate %d is nil", i)
		}
		cl.certs = append(cl.certs, cert.Raw)
	}
	cl.public = trimTPM2B(c.DevIDPublic)
	if cl.pub, err = parsePublic(cl.public, "DevID public area"); err != nil {
		return nil, fmt.Errorf("tpm_devid: %w", err)
	}
	key, err := checkDevIDPublic(cl.pub)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: %w", err)
	}
	if !equalKeys(key, c.DevIDCert[0].PublicKey) {
		return nil, errors.New("tpm_devid: the DevID certificate is not of the DevID key")
	}
	if _, _, _, err := devIDScheme(cl.pub); err != nil {
		return nil, fmt.Errorf("tpm_devid: %w", err)
	}
	cl.private = trimTPM2B(c.DevIDPrivate)
	if len(cl.private) == 0 || len(cl.private) > maxBlobSize {
		return nil, fmt.Errorf("tpm_devid: DevID private area of %d bytes", len(cl.private))
	}
	cl.open = c.Open
	if cl.open == nil {
		dev := c.Device
		if dev == "" {
			dev = DefaultDevice
		}
		cl.open = func() (transport.TPMCloser, error) { return OpenDevice(dev) }
	}
	return cl, nil
}

// DevIDFiles names the files of [LoadDevIDClient], as SPIRE's tpm_devid
// agent plugin names them.
type DevIDFiles struct {
	// CertPath is a PEM file: the DevID certificate, then intermediates.
	CertPath string
	// PrivPath and PubPath hold the DevID key's TPM2B_PRIVATE and
	// TPM2B_PUBLIC.
	PrivPath, PubPath string
}

// LoadDevIDClient is [NewDevIDClient] with the DevID certificate and key
// read from files (each at most 1 MiB); c's DevIDCert, DevIDPublic and
// DevIDPrivate are replaced by what they hold.
func LoadDevIDClient(c DevIDClientConfig, files DevIDFiles) (*DevIDClient, error) {
	b, err := atomicfile.Read(files.CertPath, maxPEMFile)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: reading the DevID certificate: %w", err)
	}
	if c.DevIDCert, err = pemutil.ParseCertificates(b); err != nil {
		return nil, fmt.Errorf("tpm_devid: DevID certificate %s: %w", files.CertPath, err)
	}
	if c.DevIDPrivate, err = atomicfile.Read(files.PrivPath, maxPEMFile); err != nil {
		return nil, fmt.Errorf("tpm_devid: reading the DevID private key blob: %w", err)
	}
	if c.DevIDPublic, err = atomicfile.Read(files.PubPath, maxPEMFile); err != nil {
		return nil, fmt.Errorf("tpm_devid: reading the DevID public key blob: %w", err)
	}
	return NewDevIDClient(c)
}

// Type returns "tpm_devid".
func (c *DevIDClient) Type() string { return DevIDType }

// Payload sends the DevID certificate and public area, the EK certificate
// and the EK's and AK's public areas. The TPM must hold an EK certificate.
func (c *DevIDClient) Payload(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := c.withKeys(func(_ transport.TPM, ek, ak, _ *object) (err error) {
		if ek.cert == nil {
			return errors.New("tpm_devid: the TPM holds no EK certificate")
		}
		out, err = json.Marshal(devIDPayloadMsg{Version: wireVersion, DevIDCerts: c.certs, DevIDPublic: c.public,
			EKCert: ek.cert, EKPublic: ek.public, AKPublic: ak.public})
		return err
	})
	return out, err
}

// withKeys opens the TPM, loads the EK, the AK and the DevID key, and runs
// f with them, one caller at a time.
func (c *DevIDClient) withKeys(f func(t transport.TPM, ek, ak, devID *object) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, err := c.open()
	if err != nil {
		return err
	}
	defer t.Close()
	return withAttestationKeys(t, c.auth, func(ek, ak *object) error {
		devID, err := c.loadDevID(t)
		if err != nil {
			return err
		}
		defer devID.flush(t)
		return f(t, ek, ak, devID)
	})
}

// srkTemplate returns the TCG's SRK template of the DevID key's type with
// an empty unique field, the parent SPIRE's tpm_devid loads DevID keys
// under.
func srkTemplate(pub *tpm2.TPMTPublic) tpm2.TPMTPublic {
	if pub.Type == tpm2.TPMAlgECC {
		t := tpm2.ECCSRKTemplate
		t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
		return t
	}
	t := tpm2.RSASRKTemplate
	t.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{})
	return t
}

// loadDevID loads the DevID key under the SRK.
func (c *DevIDClient) loadDevID(t transport.TPM) (*object, error) {
	srk, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(c.auth.owner)},
		InPublic:      tpm2.New2B(srkTemplate(c.pub)),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: creating the storage root key: %w", err)
	}
	defer tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(t)
	r, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: c.private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](c.public),
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: loading the DevID key (made under this TPM's storage root key?): %w", err)
	}
	return &object{handle: r.ObjectHandle, name: r.Name, public: c.public, pub: c.pub, transient: true}, nil
}

// Respond activates the credential of challenge with the EK and AK, has
// the AK certify the DevID key over the challenge's nonce, and signs the
// exchange with the DevID key. It refuses a challenge that names another
// server than those of the client's trust domain.
func (c *DevIDClient) Respond(ctx context.Context, challenge []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var ch devIDChallengeMsg
	if err := decodeJSON(challenge, &ch, "challenge"); err != nil {
		return nil, fmt.Errorf("tpm_devid: %w", err)
	}
	switch {
	case ch.Version != wireVersion:
		return nil, fmt.Errorf("tpm_devid: challenge of version %d, not %d", ch.Version, wireVersion)
	case ch.Audience != c.audience.String():
		return nil, fmt.Errorf("tpm_devid: the challenge is for %q, not for a server of trust domain %q: not answered "+
			"(a server of another trust domain relaying it would get this node admitted there)", ch.Audience, c.td.Name())
	case len(ch.CredentialBlob) == 0 || len(ch.CredentialBlob) > maxBlobSize ||
		len(ch.EncryptedSecret) == 0 || len(ch.EncryptedSecret) > maxBlobSize:
		return nil, errors.New("tpm_devid: challenge without a credential of a valid size")
	case len(ch.Nonce) != NonceSize:
		return nil, fmt.Errorf("tpm_devid: challenge with a nonce of %d bytes, not %d", len(ch.Nonce), NonceSize)
	}
	var out []byte
	err := c.withKeys(func(t transport.TPM, ek, ak, devID *object) error {
		act, err := tpm2.ActivateCredential{
			ActivateHandle: tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: tpm2.PasswordAuth(nil)},
			KeyHandle:      tpm2.AuthHandle{Handle: ek.handle, Name: ek.name, Auth: ek.auth()},
			CredentialBlob: tpm2.TPM2BIDObject{Buffer: ch.CredentialBlob},
			Secret:         tpm2.TPM2BEncryptedSecret{Buffer: ch.EncryptedSecret},
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("tpm_devid: activating the credential: %w", err)
		}
		rsp := devIDResponseMsg{Proof: proofWithLabel(devIDProofLabel, act.CertInfo.Buffer, c.td, c.audience, ch.CredentialBlob)}
		cert, err := tpm2.Certify{
			ObjectHandle:   tpm2.AuthHandle{Handle: devID.handle, Name: devID.name, Auth: tpm2.PasswordAuth(c.devIDAuth)},
			SignHandle:     tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: ch.Nonce},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("tpm_devid: certifying the DevID key with the attestation key: %w", err)
		}
		rsp.CertifyInfo = cert.CertifyInfo.Bytes()
		rsp.CertifySignature = tpm2.Marshal(&cert.Signature)
		if rsp.DevIDSignature, err = c.sign(t, devID, devIDSigned(c.td, c.audience, ch.Nonce)); err != nil {
			return err
		}
		out, err = json.Marshal(rsp)
		return err
	})
	return out, err
}

// sign has the DevID key sign msg: hashed by the TPM, whose ticket lets a
// restricted key sign too, then signed with the key's scheme.
func (c *DevIDClient) sign(t transport.TPM, devID *object, msg []byte) ([]byte, error) {
	_, hashAlg, in, err := devIDScheme(devID.pub)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: %w", err)
	}
	h, err := tpm2.Hash{Data: tpm2.TPM2BMaxBuffer{Buffer: msg}, HashAlg: hashAlg, Hierarchy: tpm2.TPMRHOwner}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: hashing with the TPM: %w", err)
	}
	s, err := tpm2.Sign{
		KeyHandle:  tpm2.AuthHandle{Handle: devID.handle, Name: devID.name, Auth: tpm2.PasswordAuth(c.devIDAuth)},
		Digest:     h.OutHash,
		InScheme:   in,
		Validation: h.Validation,
	}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("tpm_devid: signing with the DevID key: %w", err)
	}
	return tpm2.Marshal(&s.Signature), nil
}
