package cli

import (
	"bytes"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// writeCert writes a self-signed certificate and its key, and returns the
// certificate.
func writeCert(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	require.NoError(t, os.WriteFile(certFile, pemutil.EncodeCertificates([]*x509.Certificate{cert}), 0o600))
	return cert
}

// TestKeyPairReloader: the https_web certificate is read again when its
// files change; a pair that does not load keeps the previous one.
func TestKeyPairReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile, "endpoint-1")
	var logs logtest.Buffer
	k, err := newKeyPairReloader(certFile, keyFile, "bundle endpoint", slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	got, err := k.getCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, first.Raw, got.Certificate[0])

	second := writeCert(t, certFile, keyFile, "endpoint-2")
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(certFile, future, future))
	got, err = k.getCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, second.Raw, got.Certificate[0], "a renewed certificate is picked up")
	assert.Contains(t, logs.String(), "bundle endpoint certificate reloaded")

	require.NoError(t, os.WriteFile(certFile, []byte("not a certificate"), 0o600))
	later := future.Add(time.Minute)
	require.NoError(t, os.Chtimes(certFile, later, later))
	got, err = k.getCertificate(nil)
	require.NoError(t, err)
	assert.Equal(t, second.Raw, got.Certificate[0], "a broken one is not")
	assert.Contains(t, logs.String(), "reloading the bundle endpoint certificate failed")

	for name, tc := range map[string]struct{ cert, key, msg string }{
		"missing cert": {filepath.Join(dir, "none"), keyFile, "bundle endpoint certificate"},
		"missing key":  {certFile, filepath.Join(dir, "none"), "bundle endpoint key"},
		"garbage cert": {certFile, keyFile, "bundle endpoint certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newKeyPairReloader(tc.cert, tc.key, "bundle endpoint", slog.New(slog.DiscardHandler))
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func TestLoadBootstrapAndRoots(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("partner.test")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o600))
		return p
	}
	cert := writeCert(t, filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), "root")
	pem := write("roots.pem", pemutil.EncodeCertificates([]*x509.Certificate{cert}))
	doc, err := spiffebundle.FromX509Authorities(td, []*x509.Certificate{cert}).Marshal()
	require.NoError(t, err)
	spiffe := write("bundle.json", doc)
	garbage := write("garbage", []byte("garbage"))

	for _, path := range []string{pem, spiffe} {
		b, err := loadBootstrap(td, path)
		require.NoError(t, err)
		assert.Equal(t, td, b.TrustDomain())
		assert.True(t, b.HasX509Authority(cert))
	}
	_, err = loadBootstrap(td, filepath.Join(dir, "none"))
	require.ErrorContains(t, err, "reading the bootstrap bundle")
	_, err = loadBootstrap(td, garbage)
	require.ErrorContains(t, err, "neither a SPIFFE bundle")

	pool, err := loadRoots(pem)
	require.NoError(t, err)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool})
	require.NoError(t, err)
	_, err = loadRoots(filepath.Join(dir, "none"))
	require.ErrorContains(t, err, "reading the Web PKI roots")
	_, err = loadRoots(garbage)
	require.ErrorContains(t, err, "the Web PKI roots")
}

// TestRunRejectsBadFiles: what a file or the datastore named in the
// configuration holds is checked before the server starts.
func TestRunRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeCert(t, certFile, keyFile, "x")
	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("garbage"), 0o600))
	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	base := []string{"-trust-domain", "example.org", "-bind", "127.0.0.1:0", "-admin-socket", ""}
	kubeconfig := writeKubeconfig(t, dir)
	spiffeRel := `{"trust_domain": "partner.test", "url": "https://p/", "profile": "https_spiffe", "endpoint_spiffe_id": "spiffe://partner.test/s"`
	for name, tc := range map[string]struct {
		file string
		args []string
		msg  string
		code int // ExitFailure when zero
	}{
		"missing x509pop bundle": {`{}`, []string{"-x509pop-ca-bundle", filepath.Join(dir, "none")}, "-x509pop-ca-bundle: x509pop: reading CA bundle: ", 0},
		"metrics address taken":  {`{}`, []string{"-metrics-addr", takenAddr(t)}, "spiffe-server run: metrics: listen tcp ", 0},
		"cert without key": {`{"federation_bind": "127.0.0.1:0", "federation_profile": "https_web", "federation_cert": "` + certFile + `"}`, nil,
			"needs a certificate file and a key file", ExitUsage},
		"cert for https_spiffe": {`{"federation_bind": "127.0.0.1:0", "federation_cert": "` + certFile + `", "federation_key": "` + keyFile + `"}`, nil,
			"-federation-cert and -federation-key are for the https_web bundle endpoint profile", ExitUsage},
		"garbage cert": {`{"federation_bind": "127.0.0.1:0", "federation_profile": "https_web", "federation_cert": "` + garbage + `", "federation_key": "` + keyFile + `"}`, nil,
			"bundle endpoint certificate", 0},
		"garbage bootstrap":                   {`{"federates_with": [` + spiffeRel + `, "bundle_file": "` + garbage + `"}]}`, nil, "federates_with[0]: bootstrap bundle", 0},
		"missing roots":                       {`{"federates_with": [{"trust_domain": "p.test", "url": "https://p/", "profile": "https_web", "web_pki_roots": "/none"}]}`, nil, "federates_with[0]: reading the Web PKI roots", 0},
		"missing stored relationships' roots": {`{}`, []string{"-federation-web-pki-roots", "/none"}, "-federation-web-pki-roots: reading the Web PKI roots", 0},
		"garbage stored relationships' roots": {`{"federation_web_pki_roots": "` + garbage + `"}`, nil, "-federation-web-pki-roots: the Web PKI roots " + garbage, 0},
		"missing kubeconfig": {`{"node_attestors": {"k8s_psat": {"clusters": {"c": {"service_account_allow_list": ["ns:sa"], "kube_config_file": "/none"}}}}}`, nil,
			`node_attestors.k8s_psat: cluster "c": psatserver: kubeconfig /none`, 0},
		"k8s_psat without allow-list": {`{"node_attestors": {"k8s_psat": {"clusters": {"c": {"kube_config_file": "` + kubeconfig + `"}}}}}`, nil,
			"allow-list is empty", 0},
		"aws_iid without accounts": {`{"node_attestors": {"aws_iid": {}}}`, nil,
			"node_attestors.aws_iid: awsiid: no account ID: the account allow-list is required", 0},
		"missing aws_iid certificate": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "rsa2048_certificates": {"us-east-1": "/none"}}}}`, nil,
			"node_attestors.aws_iid.rsa2048_certificates: awsiid: certificates of region us-east-1", 0},
		"garbage aws_iid certificate": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "signature_certificates": {"us-east-1": "` + garbage + `"}}}}`, nil,
			"node_attestors.aws_iid.signature_certificates: awsiid: certificates of region us-east-1", 0},
		"aws_iid region without certificate": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "region_allow_list": ["xx-moon-1"]}}}`, nil,
			"allowed region xx-moon-1 has no certificate", 0},
		"aws_iid lookup keys without the lookup": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "skip_block_device": true}}}`, nil,
			"are for the EC2 and IAM lookups, which are off", 0},
		"aws_iid template of tags without the lookup": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "agent_path_template": "/aws_iid/{{ .Tags.env }}"}}}`, nil,
			"node_attestors.aws_iid: awsiid: agent path template: it reads the instance's tags", 0},
		"aws_iid half a key": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "access_key_id": "AKID"}}}`, nil,
			"node_attestors.aws_iid: awsiid: give both the access key ID and the secret access key, or neither", 0},
		"aws_iid role ARN": {`{"node_attestors": {"aws_iid": {"account_allow_list": ["123456789012"], "assume_role": "arn:aws:iam::123456789012:role/x"}}}`, nil,
			"is not an IAM role name", 0},
		"azure_imds without tenants": {`{"node_attestors": {"azure_imds": {}}}`, nil,
			"node_attestors.azure_imds: azureimds: no tenant: the tenant allow-list is required", 0},
		"azure_imds without subscriptions": {`{"node_attestors": {"azure_imds": {"tenants": {"contoso.onmicrosoft.com": {}}}}}`, nil,
			"tenant contoso.onmicrosoft.com has no subscription", 0},
		"missing azure_imds roots": {`{"node_attestors": {"azure_imds": {"tenants": {"contoso.onmicrosoft.com": {"allowed_subscriptions": ["8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"]}}, "root_certificates": "/none"}}}`, nil,
			"node_attestors.azure_imds.root_certificates", 0},
		"garbage azure_imds intermediates": {`{"node_attestors": {"azure_imds": {"tenants": {"contoso.onmicrosoft.com": {"allowed_subscriptions": ["8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"]}}, "intermediate_certificates": "` + garbage + `"}}}`, nil,
			"node_attestors.azure_imds.intermediate_certificates", 0},
		"azure_msi without tenants": {`{"node_attestors": {"azure_msi": {}}}`, nil,
			"node_attestors.azure_msi: azuremsi: no tenant: the tenant allow-list is required", 0},
		"azure_msi tenant by name": {`{"node_attestors": {"azure_msi": {"tenants": {"contoso.onmicrosoft.com": {}}}}}`, nil,
			`node_attestors.azure_msi: azuremsi: tenant "contoso.onmicrosoft.com" is not a tenant ID`, 0},
		"azure_msi endpoints without lookups": {`{"node_attestors": {"azure_msi": {"tenants": {"72f988bf-86f1-41af-91ab-2d7cd011db47": {}}, "arm_endpoint": "https://arm.example"}}}`, nil,
			"which no tenant turns on", 0},
		"azure_msi half the credentials": {`{"node_attestors": {"azure_msi": {"tenants": {"72f988bf-86f1-41af-91ab-2d7cd011db47": {"app_id": "x"}}}}}`, nil,
			"needs app_id and app_secret", 0},
		"azure_msi keys over http": {`{"node_attestors": {"azure_msi": {"tenants": {"72f988bf-86f1-41af-91ab-2d7cd011db47": {}}, "keys_url": "http://login.example/{tenant}"}}}`, nil,
			"want https", 0},
		"gcp_iit without projects": {`{"node_attestors": {"gcp_iit": {}}}`, nil,
			"node_attestors.gcp_iit: gcpiit: no project ID: the project allow-list is required", 0},
		"gcp_iit lookup keys without the lookup": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "allowed_label_keys": ["env"]}}}`, nil,
			"are for use_instance_metadata, which is off", 0},
		"missing gcp_iit service account file": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "use_instance_metadata": true, "service_account_file": "/none"}}}`, nil,
			"node_attestors.gcp_iit: gcpiit: service account file: open /none", 0},
		"gcp_iit negative metadata size": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "use_instance_metadata": true, "max_metadata_value_size": -1}}}`, nil,
			"must not be negative", 0},
		"missing gcp_iit keys": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "keys_file": "/none"}}}`, nil,
			"node_attestors.gcp_iit.keys_file: open /none", 0},
		"garbage gcp_iit keys": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "keys_file": "` + garbage + `"}}}`, nil,
			"node_attestors.gcp_iit: gcpiit: key document is not a JSON object", 0},
		"empty gcp_iit keys": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "keys_file": "/dev/null"}}}`, nil,
			"node_attestors.gcp_iit.keys_file: the file is empty", 0},
		"gcp_iit keys file and URL": {`{"node_attestors": {"gcp_iit": {"projectid_allow_list": ["my-project"], "keys_file": "/dev/null", "keys_url": "https://example.com/certs"}}}`, nil,
			"give keys_file or keys_url, not both", 0},
		"data dir is a file":    {`{}`, []string{"-data-dir", notDir}, "creating the data directory", 0},
		"datastore unreachable": {`{}`, []string{"-datastore", "postgres://127.0.0.1:1/none?connect_timeout=1"}, "opening the datastore", 0},
		"MySQL datastore unreachable": {`{}`, []string{"-datastore", "mysql://spiffe@unix(/nonexistent/mysqld.sock)/spiffe"},
			"opening the datastore: sqlstore: connecting", 0},
		"MySQL DSN without database": {`{}`, []string{"-datastore", "mysql://spiffe@tcp(127.0.0.1:1)/"}, "MySQL DSN names no database", 0},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"-config", writeJSON(t, dir, tc.file), "-data-dir", filepath.Join(t.TempDir(), "data")}, base...)
			code, _, stderr := runMain(t, append(args, tc.args...)...)
			assert.Equal(t, cmp.Or(tc.code, ExitFailure), code, stderr)
			assert.Contains(t, stderr, tc.msg)
			for _, prefix := range []string{"x509pop", "metrics"} {
				assert.NotContains(t, stderr, prefix+": "+prefix+": ", "no prefix twice")
			}
		})
	}
}

// takenAddr returns the address of a TCP listener that stays open until
// the test ends.
func takenAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// writeKubeconfig writes a kubeconfig of an API server at 127.0.0.1:1 (none
// answers there) and returns its path.
func writeKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	return path
}

// TestReloadK8sPSAT reloads the k8s_psat clusters from configurations
// read again, as SIGHUP does.
func TestReloadK8sPSAT(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := writeKubeconfig(t, dir)
	cluster := func(names ...string) *k8sPSATConfig {
		c := &k8sPSATConfig{Clusters: map[string]k8sClusterConfig{}}
		for _, n := range names {
			c.Clusters[n] = k8sClusterConfig{ServiceAccountAllowList: []string{"ns:agent"}, KubeConfigFile: kubeconfig}
		}
		return c
	}
	s, err := newK8sPSAT(cluster("a"))
	require.NoError(t, err)
	defer s.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reload := func(rc runConfig, err error) {
		t.Helper()
		logs.Reset()
		reloadK8sPSAT(s, func() (runConfig, error) { return rc, err }, log)
	}

	reload(runConfig{K8sPSAT: cluster("a", "b")}, nil)
	assert.Equal(t, []string{"a", "b"}, s.Clusters())
	assert.Contains(t, logs.String(), "clusters reloaded")

	reload(runConfig{}, errors.New("unknown key"))
	assert.Equal(t, []string{"a", "b"}, s.Clusters(), "a configuration that does not read changes nothing")
	assert.Contains(t, logs.String(), "unknown key")

	bad := cluster("c")
	bad.Clusters["c"] = k8sClusterConfig{KubeConfigFile: kubeconfig}
	reload(runConfig{K8sPSAT: bad}, nil)
	assert.Equal(t, []string{"a", "b"}, s.Clusters(), "an invalid cluster changes nothing")
	assert.Contains(t, logs.String(), "allow-list is empty")

	missing := cluster("d")
	missing.Clusters["d"] = k8sClusterConfig{ServiceAccountAllowList: []string{"ns:agent"}, KubeConfigFile: filepath.Join(dir, "none")}
	reload(runConfig{K8sPSAT: missing}, nil)
	assert.Equal(t, []string{"a", "b"}, s.Clusters(), "a missing kubeconfig changes nothing")

	reload(runConfig{}, nil)
	assert.Empty(t, s.Clusters(), "no k8s_psat in the configuration: no cluster")

	// A server started without k8s_psat.
	logs.Reset()
	reloadK8sPSAT(nil, func() (runConfig, error) { return runConfig{K8sPSAT: cluster("a")}, nil }, log)
	assert.Contains(t, logs.String(), "restart the server")
	logs.Reset()
	reloadK8sPSAT(nil, func() (runConfig, error) { return runConfig{}, nil }, log)
	assert.Contains(t, logs.String(), "nothing to reload")
}

// TestRereader reads the run command's configuration again from its
// arguments.
func TestRereader(t *testing.T) {
	dir := t.TempDir()
	path := writeJSON(t, dir, `{"node_attestors": {"k8s_psat": {"clusters": {"c": {"audience": ["x"]}}}}}`)
	rc, err := rereader([]string{"-config", path})()
	require.NoError(t, err)
	require.NotNil(t, rc.K8sPSAT)
	assert.Equal(t, []string{"x"}, rc.K8sPSAT.Clusters["c"].Audience)
	require.NoError(t, os.WriteFile(path, []byte(`{"node_attestors": {"k8s_psat": {"clusterz": {}}}}`), 0o600))
	_, err = rereader([]string{"-config", path})()
	require.ErrorContains(t, err, `unknown field "clusterz"`)
	assert.NotContains(t, err.Error(), "\n")
}

// TestBadConfigurationCreatesNothing: a configuration the server would
// refuse is refused before the data directory (keys, journal, SQLite
// database) is created, with a usage error.
func TestBadConfigurationCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	rel := func(extra string) string {
		return `{"federates_with": [{"trust_domain": "partner.test", "url": "https://partner.test/", "profile": "https_spiffe", "endpoint_spiffe_id": "spiffe://partner.test/spiffekit/server"` + extra + `}]}`
	}
	for name, tc := range map[string]struct {
		file string
		args []string
		msg  string
	}{
		"relationship URL": {`{"federates_with": [{"trust_domain": "p.test", "url": "http://p.test/", "profile": "https_web"}]}`, nil,
			"server: invalid configuration: federation relationship p.test: "},
		"relationship twice": {`{"federates_with": [{"trust_domain": "p.test", "url": "https://p.test/", "profile": "https_web"}, {"trust_domain": "p.test", "url": "https://p.test/", "profile": "https_web"}]}`, nil,
			"federation relationship p.test: configured twice"},
		"bootstrap bundle of another endpoint": {`{"federates_with": [{"trust_domain": "p.test", "url": "https://p.test/", "profile": "https_spiffe", "endpoint_spiffe_id": "spiffe://hub.test/s", "bundle_file": "BUNDLE"}]}`, nil,
			"a bootstrap bundle is only for an endpoint of the trust domain it serves"},
		"bundle endpoint profile":            {`{"federation_bind": "127.0.0.1:0", "federation_profile": "https_ftp"}`, nil, `unknown bundle endpoint profile "https_ftp"`},
		"bad bind":                           {`{}`, []string{"-bind", "localhost:http"}, `the node API address "localhost:http": the port must be a number`},
		"web endpoint without a certificate": {rel(`, "bundle_file": "BUNDLE"`), []string{"-bind", "127.0.0.1:0", "-federation-bind", "127.0.0.1:0", "-federation-profile", "https_web"}, "needs FederationCertificate"},
	} {
		t.Run(name, func(t *testing.T) {
			bundle := filepath.Join(dir, "bundle.pem")
			writeCert(t, bundle, filepath.Join(dir, "bundle.key"), "partner")
			data := filepath.Join(t.TempDir(), "data")
			args := []string{"-config", writeJSON(t, dir, strings.ReplaceAll(tc.file, "BUNDLE", bundle)), "-trust-domain", "example.org",
				"-data-dir", data, "-admin-socket", ""}
			code, _, stderr := runMain(t, append(args, tc.args...)...)
			assert.Equal(t, ExitUsage, code, stderr)
			assert.Contains(t, stderr, tc.msg)
			assert.NoDirExists(t, data, "nothing is created for a configuration that cannot work")
		})
	}
}
