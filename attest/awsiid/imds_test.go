package awsiid

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// fakeIMDS is an instance metadata service that speaks IMDSv2 as AWS
// documents it: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-
// seconds (1 to 21600) returns a token; a GET must carry it in
// X-aws-ec2-metadata-token, else 401; a request with X-Forwarded-For is
// refused (403), as the real service refuses proxied requests.
type fakeIMDS struct {
	*httptest.Server

	mu     sync.Mutex
	data   map[string]string // path below /latest/dynamic/ to body
	tokens map[string]bool

	tokenless  atomic.Int32 // GETs without a valid token
	gets       atomic.Int32 // GETs with a valid token
	hang       chan struct{}
	hugeToken  bool
	refusePUT  bool
	hungCalled atomic.Int32
}

func startIMDS(t *testing.T, data map[string]string) *fakeIMDS {
	t.Helper()
	f := &fakeIMDS{data: data, tokens: map[string]bool{}, hang: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.hang)
		f.Close()
	})
	return f
}

func (f *fakeIMDS) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	f.mu.Lock()
	hugeToken, refusePUT := f.hugeToken, f.refusePUT
	f.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		if r.Method != http.MethodPut {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if refusePUT {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b := make([]byte, 32)
		rand.Read(b)
		tok := base64.RawURLEncoding.EncodeToString(b)
		f.mu.Lock()
		f.tokens[tok] = true
		f.mu.Unlock()
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		if hugeToken {
			tok = strings.Repeat("t", 1<<20)
		}
		w.Write([]byte(tok))
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	ok := f.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
	f.mu.Unlock()
	if !ok {
		f.tokenless.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	f.gets.Add(1)
	path, found := strings.CutPrefix(r.URL.Path, "/latest/dynamic/")
	f.mu.Lock()
	body, has := f.data[path]
	f.mu.Unlock()
	if !found || !has {
		http.NotFound(w, r)
		return
	}
	if body == "<hang>" {
		f.hungCalled.Add(1)
		select {
		case <-r.Context().Done():
		case <-f.hang:
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(body))
}

// signer is a stand-in for AWS's key of one region.
type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

var (
	keysOnce sync.Once
	keys     [3]*rsa.PrivateKey
)

// testKey returns one of three RSA-2048 keys made once per test binary.
func testKey(t testing.TB, i int) *rsa.PrivateKey {
	keysOnce.Do(func() {
		for j := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[j] = k
		}
	})
	return keys[i]
}

// newSigner returns a signer with key i and a self-signed certificate
// named like AWS's, of the given serial.
func newSigner(t testing.TB, i int, serial int64) *signer {
	t.Helper()
	key := testKey(t, i)
	name := pkix.Name{Country: []string{"US"}, Province: []string{"Washington State"}, Locality: []string{"Seattle"}, Organization: []string{"Amazon Web Services LLC"}}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               name,
		NotBefore:             time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2195, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &signer{key: key, cert: cert}
}

// pkcs7 returns the base64 PKCS #7 signed-data message of doc, as the
// service's /rsa2048 serves it (64-character lines). The signer's
// certificate is in the message.
func (s *signer) pkcs7(t testing.TB, doc string) string {
	t.Helper()
	sd, err := pkcs7.NewSignedData([]byte(doc))
	require.NoError(t, err)
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	require.NoError(t, sd.AddSigner(s.cert, s.key, pkcs7.SignerInfoConfig{}))
	der, err := sd.Finish()
	require.NoError(t, err)
	return wrap64(base64.StdEncoding.EncodeToString(der))
}

// wrap64 cuts s into lines of 64 characters.
func wrap64(s string) string {
	var lines []string
	for len(s) > 64 {
		lines, s = append(lines, s[:64]), s[64:]
	}
	return strings.Join(append(lines, s), "\n")
}

// signature returns the base64 RSA-SHA256 signature of doc, as the
// service's /signature serves it.
func (s *signer) signature(t testing.TB, doc string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(doc))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(sig)
}

const (
	testAccount  = "123456789012"
	otherAccount = "210987654321"
	testRegion   = "us-east-1"
	testInstance = "i-0123456789abcdef0"
)

// document returns an instance identity document as the service serves
// it (pretty-printed JSON).
func document(account, region, instance string) string {
	b, _ := json.MarshalIndent(map[string]any{
		"accountId":               account,
		"architecture":            "x86_64",
		"availabilityZone":        region + "a",
		"billingProducts":         nil,
		"devpayProductCodes":      nil,
		"marketplaceProductCodes": nil,
		"imageId":                 "ami-0abcdef1234567890",
		"instanceId":              instance,
		"instanceType":            "m5.large",
		"kernelId":                nil,
		"pendingTime":             "2026-11-30T10:00:00Z",
		"privateIp":               "10.0.0.12",
		"ramdiskId":               nil,
		"region":                  region,
		"version":                 "2017-09-30",
	}, "", "  ")
	return string(b)
}

// instanceData returns the service's data of an instance signed by s.
func instanceData(t testing.TB, s *signer, doc string) map[string]string {
	return map[string]string{
		documentPath:  doc,
		signaturePath: s.signature(t, doc),
		rsa2048Path:   s.pkcs7(t, doc),
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestFakeIMDSSpeaksIMDSv2(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the service's cleanup
	f := startIMDS(t, map[string]string{documentPath: "{}"})
	c := f.Client()
	// Without a token: 401.
	resp, err := c.Get(f.URL + "/latest/dynamic/" + documentPath)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// A token PUT without its TTL header: 400.
	req, _ := http.NewRequest(http.MethodPut, f.URL+"/latest/api/token", nil)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	// Proxied: 403.
	req, _ = http.NewRequest(http.MethodPut, f.URL+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	c.CloseIdleConnections()
}
