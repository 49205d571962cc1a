package x509pop_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	nodeCA = spiffeid.RequireTrustDomainFromString("nodes.example.org")
)

// pki is a root and an intermediate that issue node certificates.
type pki struct {
	root, inter *testca.CA
}

func newPKI(t *testing.T) pki {
	root := testca.New(t, nodeCA)
	return pki{root: root, inter: root.NewIntermediate(t)}
}

// leaf issues a node certificate from the intermediate, with clientAuth.
func (p pki) leaf(t *testing.T, opts ...testca.Option) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	opts = append([]testca.Option{testca.WithTemplate(func(c *x509.Certificate) {
		c.Subject.CommonName = "db-1"
		c.DNSNames = []string{"db-1.internal"}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})}, opts...)
	return p.inter.NewLeaf(t, spiffeid.ID{}, opts...)
}

func (p pki) server(t *testing.T, now func() time.Time) *x509pop.Server {
	t.Helper()
	s, err := x509pop.NewServer(x509pop.ServerConfig{Roots: []*x509.Certificate{p.root.Cert()}, Now: now})
	require.NoError(t, err)
	return s
}

func newClient(t *testing.T, chain []*x509.Certificate, key crypto.Signer) *x509pop.Client {
	t.Helper()
	return newClientOf(t, td, chain, key)
}

func newClientOf(t *testing.T, td spiffeid.TrustDomain, chain []*x509.Certificate, key crypto.Signer) *x509pop.Client {
	t.Helper()
	c, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: td, Certificates: chain, Key: key})
	require.NoError(t, err)
	return c
}

// exchange runs one attestation of client against server in process.
func exchange(t *testing.T, s *x509pop.Server, c *x509pop.Client) (attest.NodeResult, error) {
	t.Helper()
	payload, err := c.Payload(t.Context())
	require.NoError(t, err)
	return s.Attest(t.Context(), td, payload, c.Respond)
}

// proof computes a response to challenge (the nonce, then the server's ID)
// made for the servers of trust domain tdName as the package documentation
// specifies it, independently of the package, so that the tests pin the
// protocol.
func proof(t *testing.T, key crypto.Signer, challenge []byte, leaf *x509.Certificate, tdName string) []byte {
	t.Helper()
	require.Greater(t, len(challenge), x509pop.NonceSize)
	return sign(t, key, digestV2(challenge[:x509pop.NonceSize], leaf, tdName, string(challenge[x509pop.NonceSize:])))
}

// digestV2 is the digest of a proof for nonce, leaf, the trust domain
// tdName and the server ID audience.
func digestV2(nonce []byte, leaf *x509.Certificate, tdName, audience string) [sha256.Size]byte {
	leafHash := sha256.Sum256(leaf.Raw)
	msg := append([]byte("spiffekit x509pop v2\x00"), nonce...)
	msg = append(msg, leafHash[:]...)
	for _, field := range []string{tdName, audience} {
		msg = append(msg, byte(len(field)>>8), byte(len(field)))
		msg = append(msg, field...)
	}
	return sha256.Sum256(msg)
}

// sign signs digest with key in the scheme x509pop uses for its type.
func sign(t *testing.T, key crypto.Signer, digest [sha256.Size]byte) []byte {
	t.Helper()
	var opts crypto.SignerOpts = crypto.SHA256
	switch key.(type) {
	case *rsa.PrivateKey:
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	case ed25519.PrivateKey:
		opts = crypto.Hash(0)
	}
	sig, err := key.Sign(rand.Reader, digest[:], opts)
	require.NoError(t, err)
	return sig
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func TestAttest(t *testing.T) {
	p := newPKI(t)
	uri, err := url.Parse("spiffe://nodes.example.org/db-1")
	require.NoError(t, err)
	chain, key := p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
		c.DNSNames = append(c.DNSNames, "db-1.example.org")
		c.URIs = []*url.URL{uri}
	}))
	s := p.server(t, nil)
	assert.Equal(t, "x509pop", s.Type())
	c := newClient(t, chain, key)
	assert.Equal(t, s.Type(), c.Type())

	res, err := exchange(t, s, c)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/spiffekit/agent/x509pop/"+fingerprint(chain[0]), res.AgentID.String())
	assert.True(t, res.CanReattest)
	want := attest.NewSelectors(
		attest.Selector{Type: "x509pop", Value: "subject:cn:db-1"},
		attest.Selector{Type: "x509pop", Value: "serialnumber:" + chain[0].SerialNumber.Text(16)},
		attest.Selector{Type: "x509pop", Value: "ca:fingerprint:" + fingerprint(p.inter.Cert())},
		attest.Selector{Type: "x509pop", Value: "ca:fingerprint:" + fingerprint(p.root.Cert())},
		attest.Selector{Type: "x509pop", Value: "san:dns:db-1.internal"},
		attest.Selector{Type: "x509pop", Value: "san:dns:db-1.example.org"},
		attest.Selector{Type: "x509pop", Value: "san:uri:spiffe://nodes.example.org/db-1"},
	)
	assert.Equal(t, want.String(), res.Selectors.String())
	for sel := range res.Selectors.All() {
		require.NoError(t, sel.Validate())
	}

	// Re-attestation with the same certificate gives the same identity.
	again, err := exchange(t, s, c)
	require.NoError(t, err)
	assert.Equal(t, res.AgentID, again.AgentID)
	assert.True(t, res.Selectors.Equal(again.Selectors))
}

func TestAttestKeyTypes(t *testing.T) {
	p := newPKI(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(ecdsaP384(), rand.Reader)
	require.NoError(t, err)

	for _, key := range []crypto.Signer{testca.NewECKey(t), p384, rsaKey, edKey} {
		t.Run(fmt.Sprintf("%T", key), func(t *testing.T) {
			chain, _ := p.leaf(t, testca.WithKey(key))
			s := p.server(t, nil)
			_, err := exchange(t, s, newClient(t, chain, key))
			require.NoError(t, err)

			// The independent implementation of the documented proof
			// verifies too: the protocol is what the doc says.
			payload, err := newClient(t, chain, key).Payload(t.Context())
			require.NoError(t, err)
			_, err = s.Attest(t.Context(), td, payload, func(_ context.Context, ch []byte) ([]byte, error) {
				return proof(t, key, ch, chain[0], td.Name()), nil
			})
			require.NoError(t, err)
		})
	}
}

// The chain must verify against the server's roots at the server's time,
// and the leaf must be fit for client authentication.
func TestAttestRejectsCertificate(t *testing.T) {
	p := newPKI(t)
	other := newPKI(t)
	now := time.Now()

	tests := []struct {
		name  string
		chain func(t *testing.T) ([]*x509.Certificate, crypto.Signer)
		now   func() time.Time
		msg   string
	}{
		{
			name:  "from another CA",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) { return other.leaf(t) },
			msg:   "does not verify",
		},
		{
			name: "intermediate left out",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				chain, key := p.leaf(t)
				return chain[:1], key
			},
			msg: "does not verify",
		},
		{
			name: "intermediate from another CA",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				chain, key := p.leaf(t)
				return []*x509.Certificate{chain[0], other.inter.Cert()}, key
			},
			msg: "does not verify",
		},
		{
			name:  "expired",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) { return p.leaf(t) },
			now:   func() time.Time { return now.Add(2 * time.Hour) },
			msg:   "does not verify",
		},
		{
			name: "not yet valid",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) { c.NotBefore = now.Add(time.Minute) }))
			},
			msg: "does not verify",
		},
		{
			name: "serverAuth only",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
					c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
				}))
			},
			msg: "clientAuth",
		},
		{
			// x509.Verify accepts a leaf without EKU for any purpose;
			// x509pop does not.
			name: "no extended key usage",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) { c.ExtKeyUsage = nil }))
			},
			msg: "clientAuth",
		},
		{
			name: "key usage without digitalSignature",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment }))
			},
			msg: "digitalSignature",
		},
		{
			name: "leaf is a CA",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
					c.IsCA = true
					c.BasicConstraintsValid = true
					c.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
				}))
			},
			msg: "is a CA",
		},
		{
			name: "intermediate CA alone, with its key",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return []*x509.Certificate{p.inter.Cert()}, p.inter.Key()
			},
			msg: "is a CA",
		},
		{
			name: "root alone, with its key",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return []*x509.Certificate{p.root.Cert()}, p.root.Key()
			},
			msg: "is a CA",
		},
		{
			name: "too many selectors",
			chain: func(t *testing.T) ([]*x509.Certificate, crypto.Signer) {
				return p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
					for i := range 64 {
						c.DNSNames = append(c.DNSNames, fmt.Sprintf("n%d.example.org", i))
					}
				}))
			},
			msg: "selectors",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, key := tt.chain(t)
			c := newClient(t, chain, key)
			payload, err := c.Payload(t.Context())
			require.NoError(t, err)
			challenged := false
			_, err = p.server(t, tt.now).Attest(t.Context(), td, payload, func(ctx context.Context, nonce []byte) ([]byte, error) {
				challenged = true
				return c.Respond(ctx, nonce)
			})
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			assert.ErrorContains(t, err, tt.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "x509pop: "))
			assert.False(t, challenged, "a certificate that fails is refused before any challenge")
		})
	}
}

func TestAttestAnyExtKeyUsage(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageAny}
		c.KeyUsage = 0
	}))
	_, err := exchange(t, p.server(t, nil), newClient(t, chain, key))
	require.NoError(t, err)
}

// The response must be a fresh signature by the leaf's key over this
// exchange's nonce, in the documented message.
func TestAttestRejectsProof(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	s := p.server(t, nil)
	c := newClient(t, chain, key)
	payload, err := c.Payload(t.Context())
	require.NoError(t, err)

	// A response recorded from one successful exchange; the challenge is
	// the nonce, then the ID of the trust domain's servers.
	var recorded []byte
	_, err = s.Attest(t.Context(), td, payload, func(ctx context.Context, challenge []byte) ([]byte, error) {
		assert.Equal(t, "spiffe://example.org/spiffekit/server", string(challenge[x509pop.NonceSize:]))
		assert.Len(t, challenge, x509pop.NonceSize+len("spiffe://example.org/spiffekit/server"))
		recorded, err = c.Respond(ctx, challenge)
		return recorded, err
	})
	require.NoError(t, err)
	leafHash := sha256.Sum256(chain[0].Raw)

	otherKey := testca.NewECKey(t)
	sameCN, sameCNKey := p.leaf(t)
	tests := []struct {
		name    string
		respond attest.Challenger
	}{
		{"replayed response", func(context.Context, []byte) ([]byte, error) { return recorded, nil }},
		{"the documented proof (control: accepted)", nil},
		{"wrong key", func(_ context.Context, ch []byte) ([]byte, error) {
			return proof(t, otherKey, ch, chain[0], td.Name()), nil
		}},
		{"key of another leaf of the same CA", func(_ context.Context, ch []byte) ([]byte, error) {
			return proof(t, sameCNKey, ch, sameCN[0], td.Name()), nil
		}},
		{"other nonce", func(_ context.Context, ch []byte) ([]byte, error) {
			other := append([]byte(nil), ch...)
			other[0] ^= 1
			return proof(t, key, other, chain[0], td.Name()), nil
		}},
		{"bound to another leaf", func(_ context.Context, ch []byte) ([]byte, error) {
			return proof(t, key, ch, sameCN[0], td.Name()), nil
		}},
		// The binding to the trust domain and the server: a proof made for
		// a server of another trust domain, which relayed our nonce.
		{"for another trust domain and its server", func(_ context.Context, ch []byte) ([]byte, error) {
			other := append(ch[:x509pop.NonceSize:x509pop.NonceSize], "spiffe://other.org/spiffekit/server"...)
			return proof(t, key, other, chain[0], "other.org"), nil
		}},
		{"for another trust domain, naming our server", func(_ context.Context, ch []byte) ([]byte, error) {
			return proof(t, key, ch, chain[0], "other.org"), nil
		}},
		{"for another server of our trust domain", func(_ context.Context, ch []byte) ([]byte, error) {
			other := append(ch[:x509pop.NonceSize:x509pop.NonceSize], "spiffe://example.org/elsewhere"...)
			return proof(t, key, other, chain[0], td.Name()), nil
		}},
		{"version 1 proof, bound to nothing", func(_ context.Context, ch []byte) ([]byte, error) {
			msg := append([]byte("spiffekit x509pop v1\x00"), ch[:x509pop.NonceSize]...)
			return sign(t, key, sha256.Sum256(append(msg, leafHash[:]...))), nil
		}},
		{"raw nonce signed, no domain separation", func(_ context.Context, ch []byte) ([]byte, error) {
			digest := sha256.Sum256(ch[:x509pop.NonceSize])
			return key.Sign(rand.Reader, digest[:], crypto.SHA256)
		}},
		{"empty", func(context.Context, []byte) ([]byte, error) { return nil, nil }},
		{"garbage", func(context.Context, []byte) ([]byte, error) { return []byte("signature"), nil }},
		{"oversized", func(context.Context, []byte) ([]byte, error) { return make([]byte, attest.MaxNodePayload), nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.respond == nil {
				_, err := s.Attest(t.Context(), td, payload, func(_ context.Context, ch []byte) ([]byte, error) {
					return proof(t, key, ch, chain[0], td.Name()), nil
				})
				require.NoError(t, err)
				return
			}
			_, err := s.Attest(t.Context(), td, payload, tt.respond)
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			assert.True(t, strings.HasPrefix(err.Error(), "x509pop: "))
		})
	}
}

// Two trust domains trust the same node CA. A server of one (the relay)
// passes the challenge of the other's server to one of its nodes: the node
// does not answer a challenge naming another trust domain's server, and
// its answer to the challenge rewritten to name its own server is refused
// by the server that made it.
func TestAttestRefusesChallengeRelayedFromAnotherTrustDomain(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	victim := p.server(t, nil)
	other := spiffeid.RequireTrustDomainFromString("other.org")
	node := newClientOf(t, other, chain, key) // a node of the relay's trust domain
	payload, err := node.Payload(t.Context())
	require.NoError(t, err)

	_, err = victim.Attest(t.Context(), td, payload, node.Respond)
	require.ErrorContains(t, err, `x509pop: the challenge is for spiffe://example.org/spiffekit/server, not for a server of trust domain "other.org"`)
	assert.NotErrorIs(t, err, attest.ErrNodeRejected, "the node's refusal is the challenge's failure")

	_, err = victim.Attest(t.Context(), td, payload, func(ctx context.Context, ch []byte) ([]byte, error) {
		return node.Respond(ctx, append(ch[:x509pop.NonceSize:x509pop.NonceSize], "spiffe://other.org/spiffekit/server"...))
	})
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	assert.ErrorContains(t, err, "no proof of possession")

	// The same node, as a node of the victim's trust domain, is admitted.
	_, err = victim.Attest(t.Context(), td, payload, newClient(t, chain, key).Respond)
	require.NoError(t, err)
}

// The wrong RSA padding is a different scheme: PKCS #1 v1.5 is refused.
func TestAttestRejectsRSAPKCS1v15(t *testing.T) {
	p := newPKI(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	chain, _ := p.leaf(t, testca.WithKey(rsaKey))
	payload, err := newClient(t, chain, rsaKey).Payload(t.Context())
	require.NoError(t, err)
	_, err = p.server(t, nil).Attest(t.Context(), td, payload, func(_ context.Context, ch []byte) ([]byte, error) {
		digest := digestV2(ch[:x509pop.NonceSize], chain[0], td.Name(), string(ch[x509pop.NonceSize:]))
		return rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest[:])
	})
	require.ErrorIs(t, err, attest.ErrNodeRejected)
}

func TestAttestRejectsPayload(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	s := p.server(t, nil)
	c := newClient(t, chain, key)
	good, err := c.Payload(t.Context())
	require.NoError(t, err)

	var nine []byte
	for range 9 {
		nine = append(nine, chain[0].Raw...)
	}
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a certificate")},
		{"PEM instead of DER", pemutil.EncodeCertificates(chain)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"trailing garbage element", append(append([]byte(nil), good...), 0x04, 0x01, 0x00)},
		{"DER but not a certificate", []byte{0x30, 0x03, 0x02, 0x01, 0x01}},
		{"too many certificates", nine},
		{"oversized", make([]byte, attest.MaxNodePayload+1)},
		{"long-form length of an oversized element", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Attest(t.Context(), td, tt.payload, func(context.Context, []byte) ([]byte, error) {
				t.Error("challenge sent for a malformed payload")
				return nil, nil
			})
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			assert.True(t, strings.HasPrefix(err.Error(), "x509pop: "))
			assert.Less(t, len(err.Error()), 400)
		})
	}
}

// A failing challenge is not a verdict on the node.
func TestAttestChallengeFailure(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	payload, err := newClient(t, chain, key).Payload(t.Context())
	require.NoError(t, err)
	s := p.server(t, nil)

	broken := errors.New("stream closed")
	_, err = s.Attest(t.Context(), td, payload, func(context.Context, []byte) ([]byte, error) { return nil, broken })
	require.ErrorIs(t, err, broken)
	assert.NotErrorIs(t, err, attest.ErrNodeRejected)

	_, err = s.Attest(t.Context(), td, payload, nil)
	require.ErrorContains(t, err, "x509pop: no challenger")
	_, err = s.Attest(t.Context(), spiffeid.TrustDomain{}, payload, newClient(t, chain, key).Respond)
	require.ErrorContains(t, err, "x509pop: no trust domain")
}

// A value that a selector cannot hold is left out rather than admitted in
// a form that could match something else.
func TestSelectorsLeaveOutInvalidValues(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
		c.Subject.CommonName = "db\x00-1"
	}))
	res, err := exchange(t, p.server(t, nil), newClient(t, chain, key))
	require.NoError(t, err)
	for sel := range res.Selectors.All() {
		assert.False(t, strings.HasPrefix(sel.Value, "subject:cn:"), sel.String())
	}
	assert.Equal(t, 4, res.Selectors.Len(), "serial, two CA fingerprints, one DNS name")
}

func TestNewServer(t *testing.T) {
	_, err := x509pop.NewServer(x509pop.ServerConfig{})
	require.ErrorContains(t, err, "x509pop: no root certificates")
	_, err = x509pop.NewServer(x509pop.ServerConfig{Roots: []*x509.Certificate{nil}})
	require.ErrorContains(t, err, "x509pop: root certificate 0 is nil")
}

func TestNewClient(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	tests := []struct {
		name string
		c    x509pop.ClientConfig
		msg  string
	}{
		{"no trust domain", x509pop.ClientConfig{Certificates: chain, Key: key}, "no trust domain"},
		{"no certificate", x509pop.ClientConfig{TrustDomain: td, Key: key}, "no certificate"},
		{"no key", x509pop.ClientConfig{TrustDomain: td, Certificates: chain}, "no private key"},
		{"nil certificate", x509pop.ClientConfig{TrustDomain: td, Certificates: []*x509.Certificate{chain[0], nil}, Key: key}, "certificate 1 is nil"},
		{"too long", x509pop.ClientConfig{TrustDomain: td, Certificates: make([]*x509.Certificate, 9), Key: key}, "longer than 8"},
		{"key of another certificate", x509pop.ClientConfig{TrustDomain: td, Certificates: chain, Key: testca.NewECKey(t)}, "does not match"},
		{"unsupported key", x509pop.ClientConfig{TrustDomain: td, Certificates: chain, Key: oddSigner{}}, "unsupported key type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := x509pop.NewClient(tt.c)
			require.ErrorContains(t, err, tt.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "x509pop: "))
		})
	}

	t.Run("oversized chain", func(t *testing.T) {
		big, bigKey := p.leaf(t, testca.WithTemplate(func(c *x509.Certificate) {
			for i := range 3000 {
				c.DNSNames = append(c.DNSNames, fmt.Sprintf("name-%04d.example.org", i))
			}
		}))
		_, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: td, Certificates: big, Key: bigKey})
		require.ErrorContains(t, err, "larger than")
	})
}

func TestClientRespond(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	c := newClient(t, chain, key)

	nonce := make([]byte, x509pop.NonceSize)
	withServer := func(id string) []byte { return append(bytes.Clone(nonce), id...) }
	for _, tt := range []struct {
		name      string
		challenge []byte
		msg       string
	}{
		{"empty", nil, "x509pop: challenge of 0 bytes is shorter than its 32-byte nonce"},
		{"short", make([]byte, 31), "x509pop: challenge of 31 bytes is shorter than its 32-byte nonce"},
		{"bare nonce (version 1)", nonce, "x509pop: the challenge names no server"},
		{"no SPIFFE ID", withServer("server"), "x509pop: the server ID the challenge names"},
		{"oversized", withServer("spiffe://example.org/" + strings.Repeat("a", 2048)), "x509pop: challenge of 2101 bytes is larger than 2080"},
		{"server of another trust domain", withServer("spiffe://other.org/spiffekit/server"),
			`x509pop: the challenge is for spiffe://other.org/spiffekit/server, not for a server of trust domain "example.org"`},
		{"another ID of our trust domain", withServer("spiffe://example.org/spiffekit/agent/x"),
			`x509pop: the challenge is for spiffe://example.org/spiffekit/agent/x, not for a server of trust domain "example.org"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Respond(t.Context(), tt.challenge)
			require.ErrorContains(t, err, tt.msg, "the agent answers challenges of the protocol's form, for its own servers, only")
		})
	}
	sig, err := c.Respond(t.Context(), withServer("spiffe://example.org/spiffekit/server"))
	require.NoError(t, err)
	digest := digestV2(nonce, chain[0], td.Name(), "spiffe://example.org/spiffekit/server")
	assert.True(t, ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), digest[:], sig), "the documented proof")

	// The payload is the client's to keep: callers may change the copy.
	p1, err := c.Payload(t.Context())
	require.NoError(t, err)
	p1[0] ^= 0xff
	p2, err := c.Payload(t.Context())
	require.NoError(t, err)
	assert.NotEqual(t, p1[0], p2[0])

	// A signer that fails.
	c = newClient(t, chain, failingSigner{key})
	_, err = c.Respond(t.Context(), withServer("spiffe://example.org/spiffekit/server"))
	require.ErrorContains(t, err, "x509pop: signing challenge")
}

func TestLoad(t *testing.T) {
	p := newPKI(t)
	chain, key := p.leaf(t)
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	certPath := filepath.Join(dir, "node.pem")
	keyPath := filepath.Join(dir, "node.key")
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(caPath, pemutil.EncodeCertificates([]*x509.Certificate{p.root.Cert()}), 0o644))
	require.NoError(t, os.WriteFile(certPath, pemutil.EncodeCertificates(chain), 0o644))
	require.NoError(t, os.WriteFile(keyPath, keyPEM, 0o600))

	s, err := x509pop.LoadServer(caPath)
	require.NoError(t, err)
	c, err := x509pop.LoadClient(td, certPath, keyPath)
	require.NoError(t, err)
	_, err = exchange(t, s, c)
	require.NoError(t, err)

	garbage := filepath.Join(dir, "garbage")
	require.NoError(t, os.WriteFile(garbage, []byte("nothing"), 0o600))
	missing := filepath.Join(dir, "missing")

	_, err = x509pop.LoadServer(missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = x509pop.LoadServer(garbage)
	require.ErrorIs(t, err, pemutil.ErrNoCertificates)
	_, err = x509pop.LoadClient(td, missing, keyPath)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = x509pop.LoadClient(td, garbage, keyPath)
	require.ErrorIs(t, err, pemutil.ErrNoCertificates)
	_, err = x509pop.LoadClient(td, certPath, missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = x509pop.LoadClient(td, certPath, garbage)
	require.ErrorIs(t, err, pemutil.ErrNoPrivateKey)

	// A key file others may read is refused.
	require.NoError(t, os.Chmod(keyPath, 0o644))
	_, err = x509pop.LoadClient(td, certPath, keyPath)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), string(keyPEM))
}

// oddSigner has a public key of a type x509pop does not support.
type oddSigner struct{}

func (oddSigner) Public() crypto.PublicKey { return []byte("key") }
func (oddSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("no")
}

// failingSigner is a key, say in an HSM, that cannot sign right now.
type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("token removed")
}

func ecdsaP384() elliptic.Curve { return elliptic.P384() }
