// Package imdstest is an EC2 instance metadata service for tests: it
// speaks IMDSv2 as AWS documents it and serves instance identity
// documents signed with test keys, in both of AWS's forms (the PKCS #7
// RSA-2048 message and the RSA-SHA256 signature), whose certificates the
// test gives the server under test. Test only.
//
// The service: PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-
// seconds (1 to 21600) returns a token, echoing the TTL header; a GET
// must carry a token it issued in X-aws-ec2-metadata-token, else 401; a
// request with X-Forwarded-For is refused (403), as the real service
// refuses proxied requests; paths it was not given are 404.
package imdstest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
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
)

// Paths of the identity document and its signatures below /latest/dynamic/.
const (
	DocumentPath  = "instance-identity/document"
	SignaturePath = "instance-identity/signature"
	RSA2048Path   = "instance-identity/rsa2048"
)

// Hang, as the body of a path, makes the service never answer it (until
// the request or the test ends).
const Hang = "<hang>"

// Server is a running metadata service.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	data      map[string]string
	tokens    map[string]bool
	hugeToken bool
	refusePUT bool

	tokenless atomic.Int32
	gets      atomic.Int32
	hung      atomic.Int32
	hang      chan struct{}
}

// Start runs a service of data (path below /latest/dynamic/ to body) on
// a loopback port until the test ends.
func Start(t testing.TB, data map[string]string) *Server {
	t.Helper()
	s := &Server{data: data, tokens: map[string]bool{}, hang: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.hang)
		s.Close()
	})
	return s
}

// Gets is the number of GETs that carried a valid token.
func (s *Server) Gets() int { return int(s.gets.Load()) }

// Tokenless is the number of GETs without a valid token (IMDSv1's).
func (s *Server) Tokenless() int { return int(s.tokenless.Load()) }

// HungCalls is the number of requests of a Hang path.
func (s *Server) HungCalls() int { return int(s.hung.Load()) }

// SetHugeToken makes the token responses 1 MiB long.
func (s *Server) SetHugeToken() { s.mu.Lock(); s.hugeToken = true; s.mu.Unlock() }

// SetRefusePUT makes the token requests fail with 403.
func (s *Server) SetRefusePUT() { s.mu.Lock(); s.refusePUT = true; s.mu.Unlock() }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Forwarded-For") != "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	hugeToken, refusePUT := s.hugeToken, s.refusePUT
	s.mu.Unlock()
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
		s.mu.Lock()
		s.tokens[tok] = true
		s.mu.Unlock()
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
	s.mu.Lock()
	ok := s.tokens[r.Header.Get("X-aws-ec2-metadata-token")]
	s.mu.Unlock()
	if !ok {
		s.tokenless.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.gets.Add(1)
	path, found := strings.CutPrefix(r.URL.Path, "/latest/dynamic/")
	s.mu.Lock()
	body, has := s.data[path]
	s.mu.Unlock()
	if !found || !has {
		http.NotFound(w, r)
		return
	}
	if body == Hang {
		s.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-s.hang:
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(body))
}

// Signer stands for AWS's key of one region.
type Signer struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

var (
	keysOnce sync.Once
	keys     [3]*rsa.PrivateKey
)

// NewSigner returns a signer with test key i (0 to 2, RSA-2048, made once
// per test binary) and a self-signed certificate named like AWS's, of the
// given serial: two signers of one serial have the same issuer and serial
// number.
func NewSigner(t testing.TB, i int, serial int64) *Signer {
	t.Helper()
	keysOnce.Do(func() {
		for j := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[j] = k
		}
	})
	key := keys[i]
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
	return &Signer{Key: key, Cert: cert}
}

// PKCS7 returns the base64 PKCS #7 signed-data message of doc, SHA-256,
// as the service's /rsa2048 serves it (64-character lines). The signer's
// certificate is in the message.
func (s *Signer) PKCS7(t testing.TB, doc string) string {
	t.Helper()
	sd, err := pkcs7.NewSignedData([]byte(doc))
	require.NoError(t, err)
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	require.NoError(t, sd.AddSigner(s.Cert, s.Key, pkcs7.SignerInfoConfig{}))
	der, err := sd.Finish()
	require.NoError(t, err)
	b64 := base64.StdEncoding.EncodeToString(der)
	var lines []string
	for len(b64) > 64 {
		lines, b64 = append(lines, b64[:64]), b64[64:]
	}
	return strings.Join(append(lines, b64), "\n")
}

// Signature returns the base64 RSA-SHA256 signature of doc, as the
// service's /signature serves it.
func (s *Signer) Signature(t testing.TB, doc string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(doc))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.Key, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(sig)
}

// Data returns the service's data of an instance whose document s signed.
func (s *Signer) Data(t testing.TB, doc string) map[string]string {
	t.Helper()
	return map[string]string{
		DocumentPath:  doc,
		SignaturePath: s.Signature(t, doc),
		RSA2048Path:   s.PKCS7(t, doc),
	}
}

// Document returns an instance identity document as the service serves
// it (indented JSON), of an m5.large in the first zone of region.
func Document(account, region, instance string) string {
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
