package tpm_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

var devIDAgentPattern = regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/tpm_devid/[0-9a-f]{40}`)

// provisionDevID makes an ECDSA P-256 DevID key in the swtpm at socket,
// under the SRK of the TCG ECC template with an empty unique field, as an
// operator's tpm2_createprimary and tpm2_create would, and writes its
// TPM2B_PUBLIC and TPM2B_PRIVATE under dir. It returns the key and the
// files' paths.
func provisionDevID(t *testing.T, socket, dir string) (key any, pubPath, privPath string) {
	t.Helper()
	dev, err := tpm.OpenDevice(socket)
	require.NoError(t, err)
	defer dev.Close()
	srkT := tpm2.ECCSRKTemplate
	srkT.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{})
	srk, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		InPublic: tpm2.New2B(srkT)}.Execute(dev)
	require.NoError(t, err)
	defer tpm2.FlushContext{FlushHandle: srk.ObjectHandle}.Execute(dev)
	r, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: srk.ObjectHandle, Name: srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, SignEncrypt: true},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
				Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
				CurveID:   tpm2.TPMECCNistP256,
				KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
		}),
	}.Execute(dev)
	require.NoError(t, err)
	pub, err := r.OutPublic.Contents()
	require.NoError(t, err)
	key, err = tpm2.Pub(*pub)
	require.NoError(t, err)
	pubPath, privPath = filepath.Join(dir, "devid.pub"), filepath.Join(dir, "devid.priv")
	require.NoError(t, os.WriteFile(pubPath, tpm2.Marshal(r.OutPublic), 0o600))
	require.NoError(t, os.WriteFile(privPath, tpm2.Marshal(r.OutPrivate), 0o600))
	return key, pubPath, privPath
}

// devIDCA is a self-signed DevID CA; issue writes a DevID certificate of
// key, named cn, to a PEM file.
type devIDCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newDevIDCA(t *testing.T, cn string) *devIDCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &devIDCA{cert: c, key: k}
}

func (ca *devIDCA) issue(t *testing.T, key any, cn, path string) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key, ca.key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
}

func writeConfig(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// TestAttestWithTPMDevID runs spiffe-server with the tpm_devid attestor
// (SPIRE's keys) trusting a DevID CA made here and swtpm's EK CA, and
// spiffe-agent attesting with a DevID key made in a software TPM: the
// agent gets its tpm_devid ID and selectors and serves an SVID to a
// workload registered under it. A DevID certificate of another CA, for the
// same TPM key, is refused.
func TestAttestWithTPMDevID(t *testing.T) {
	ekCA := swtpmtest.NewCA(t)
	sw := swtpmtest.New(t, ekCA)
	dir := progtest.ShortTemp(t)
	ca, other := newDevIDCA(t, "Example DevID CA"), newDevIDCA(t, "Other DevID CA")
	caPath := filepath.Join(dir, "devid-ca.pem")
	require.NoError(t, os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644))
	key, pubPath, privPath := provisionDevID(t, sw.Socket, dir)
	certPath, otherCertPath := filepath.Join(dir, "devid.pem"), filepath.Join(dir, "other.pem")
	ca.issue(t, key, "node-a", certPath)
	other.issue(t, key, "node-a", otherCertPath)

	config := writeConfig(t, filepath.Join(dir, "server.json"), map[string]any{"node_attestors": map[string]any{"tpm_devid": map[string]any{
		"devid_ca_path": caPath, "endorsement_ca_path": ekCA.BundleFile(t)}}})
	e := progtest.NewEnv(t, "-config", config)
	srv := e.StartServer()
	agentConfig := func(name, cert string) []string {
		c := writeConfig(t, filepath.Join(dir, name+".json"), map[string]any{"node_attestor": map[string]any{"tpm_devid": map[string]any{
			"devid_cert_path": cert, "devid_priv_path": privPath, "devid_pub_path": pubPath, "tpm_device_path": sw.Socket}}})
		return []string{"run", "-config", c, "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
			"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}
	}

	agent := progtest.Start(t, e.AgentBin, agentConfig("a", certPath)...)
	progtest.WaitFor(t, "the agent to attest", func() bool { return strings.Contains(agent.Output(), "agent started") }, agent)
	agentID := devIDAgentPattern.FindString(agent.Output())
	require.NotEmpty(t, agentID, agent.Output())
	out := progtest.Must(t, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock, "-spiffe-id", agentID)
	for _, sel := range []string{"tpm_devid:subject:cn:node-a", "tpm_devid:issuer:cn:Example DevID CA",
		"tpm_devid:fingerprint:" + agentID[strings.LastIndex(agentID, "/")+1:]} {
		assert.Contains(t, out, sel)
	}
	e.Entry(agentID, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the SVID", func() bool {
		out, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "x509", "-socket", filepath.Join(e.Dir, "a.sock"))
		return code == 0 && strings.Contains(out, "spiffe://example.org/web")
	}, agent)

	// The same TPM key, certified by a CA the server does not trust.
	before := len(srv.Output())
	_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentConfig("b", otherCertPath)...)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "refused")
	progtest.WaitFor(t, "the server to log the refusal", func() bool {
		return strings.Contains(srv.Output()[before:], "node attestation refused")
	}, srv)
	assert.Contains(t, srv.Output()[before:], "does not verify")
}
