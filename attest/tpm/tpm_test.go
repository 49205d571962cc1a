package tpm

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD = spiffeid.RequireTrustDomainFromString("other.example")
)

// answerWith returns a challenger that has client answer.
func answerWith(client *Client) attest.Challenger {
	return func(ctx context.Context, ch []byte) ([]byte, error) { return client.Respond(ctx, ch) }
}

// exchange runs one attestation of the node of client with srv, in
// process, as the server's node API would.
func exchange(t *testing.T, srv *Server, client *Client) (attest.NodeResult, error) {
	t.Helper()
	return srv.Attest(context.Background(), td, payloadOf(t, client), answerWith(client))
}

func payloadOf(t *testing.T, client *Client) []byte {
	t.Helper()
	p, err := client.Payload(context.Background())
	if err != nil {
		t.Fatalf("Payload: %v", err)
	}
	return p
}

func newClient(t testing.TB, sw *swtpmtest.TPM) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{TrustDomain: td, Device: sw.Socket})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newServer(t testing.TB, c ServerConfig) *Server {
	t.Helper()
	s, err := NewServer(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decodePayload(t *testing.T, b []byte) payloadMsg {
	t.Helper()
	var p payloadMsg
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ekHashOf returns the EK hash of a payload's EK certificate.
func ekHashOf(t *testing.T, payload []byte) string {
	t.Helper()
	c, err := x509.ParseCertificate(decodePayload(t, payload).EKCert)
	if err != nil {
		t.Fatal(err)
	}
	h, err := EKHash(c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustName(t *testing.T, dev transport.TPM, h tpm2.TPMHandle) tpm2.TPM2BName {
	t.Helper()
	r, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(dev)
	if err != nil {
		t.Fatal(err)
	}
	return r.Name
}

func mustReject(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, attest.ErrNodeRejected) {
		t.Fatalf("got %v, want a rejection", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("got %q, want it to say %q", err, want)
	}
}

// neverCalled is a challenger for exchanges that must end before the
// challenge.
func neverCalled(t *testing.T) attest.Challenger {
	return func(context.Context, []byte) ([]byte, error) {
		t.Error("challenge sent")
		return nil, errors.New("no")
	}
}

// TestSwtpm runs the protocol against software TPMs: a and b are
// manufactured by the CA the server trusts, c by another.
func TestSwtpm(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	trusted, untrusted := swtpmtest.NewCA(t), swtpmtest.NewCA(t)
	tpms := swtpmtest.NewN(t, trusted, trusted, untrusted) // at once: swtpm_setup is slow
	a, b, c := tpms[0], tpms[1], tpms[2]
	roots := trusted.Roots(t)
	srv := newServer(t, ServerConfig{ManufacturerCAs: roots})
	ca, cb, cc := newClient(t, a), newClient(t, b), newClient(t, c)
	ctx := context.Background()

	t.Run("ManufacturerCA", func(t *testing.T) {
		payload := payloadOf(t, ca)
		res, err := srv.Attest(ctx, td, payload, answerWith(ca))
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		hash := ekHashOf(t, payload)
		if want := "spiffe://example.org/spiffekit/agent/tpm/" + hash; res.AgentID.String() != want {
			t.Errorf("agent ID %s, want %s", res.AgentID, want)
		}
		if !res.CanReattest {
			t.Error("CanReattest is false")
		}
		for _, want := range []string{"ek_hash:" + hash, "ek_cert:trusted:true", "issuer:cn:swtpm-localca",
			"manufacturer:id:00001014", "model:swtpm"} {
			if !res.Selectors.Contains(attest.Selector{Type: Type, Value: want}) {
				t.Errorf("selectors %v lack tpm:%s", res.Selectors, want)
			}
		}
		// The same TPM again: the same agent ID (re-attestation).
		again, err := exchange(t, srv, ca)
		if err != nil || again.AgentID != res.AgentID {
			t.Errorf("second attestation: %v, %v; want %v", again.AgentID, err, res.AgentID)
		}
		// Another TPM of the same manufacturer: another ID.
		other, err := exchange(t, srv, cb)
		if err != nil || other.AgentID == res.AgentID {
			t.Errorf("other TPM: %v, %v", other.AgentID, err)
		}
	})

	t.Run("PCRQuote", func(t *testing.T) {
		s := newServer(t, ServerConfig{ManufacturerCAs: roots, PCRs: []int{0, 7, 16}})
		res, err := exchange(t, s, ca)
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		// swtpm starts with PCRs 0-15 at zero and 16 (debug) at zero.
		zero := strings.Repeat("00", 32)
		for _, p := range []string{"0", "7", "16"} {
			if !res.Selectors.Contains(attest.Selector{Type: Type, Value: "pcr:sha256:" + p + ":" + zero}) {
				t.Errorf("selectors %v lack PCR %s", res.Selectors, p)
			}
		}
	})

	t.Run("EKHashAllowList", func(t *testing.T) {
		// c's CA is not trusted, but its EK is allow-listed.
		payload := payloadOf(t, cc)
		s := newServer(t, ServerConfig{EKHashes: []string{ekHashOf(t, payload)}})
		res, err := s.Attest(ctx, td, payload, answerWith(cc))
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		if !res.Selectors.Contains(attest.Selector{Type: Type, Value: "ek_cert:trusted:false"}) ||
			slices.ContainsFunc(res.Selectors.Slice(), func(s attest.Selector) bool { return strings.HasPrefix(s.Value, "issuer:") }) {
			t.Errorf("selectors %v: an untrusted certificate's fields must not be selectors", res.Selectors)
		}
		// And a itself is not on the list.
		_, err = s.Attest(ctx, td, payloadOf(t, ca), neverCalled(t))
		mustReject(t, err, "not trusted")
	})

	t.Run("UntrustedCA", func(t *testing.T) {
		_, err := srv.Attest(ctx, td, payloadOf(t, cc), neverCalled(t))
		mustReject(t, err, "does not verify")
	})

	t.Run("AnswerFromAnotherTPM", func(t *testing.T) {
		// b's TPM cannot activate a credential made for a's EK.
		_, err := srv.Attest(ctx, td, payloadOf(t, ca), answerWith(cb))
		if err == nil || !strings.Contains(err.Error(), "activating the credential") {
			t.Fatalf("got %v, want b's TPM to fail the activation", err)
		}
		// Nor when the payload names b's AK with a's EK certificate.
		pa, pb := decodePayload(t, payloadOf(t, ca)), decodePayload(t, payloadOf(t, cb))
		pa.AKPublic = pb.AKPublic
		_, err = srv.Attest(ctx, td, encode(t, pa), answerWith(cb))
		if err == nil || !strings.Contains(err.Error(), "activating the credential") {
			t.Fatalf("got %v, want b's TPM to fail the activation", err)
		}
		// An answer b made for its own exchange is refused for a's.
		var bAnswer []byte
		if _, err := srv.Attest(ctx, td, encode(t, pb), func(ctx context.Context, ch []byte) ([]byte, error) {
			bAnswer, err = cb.Respond(ctx, ch)
			return bAnswer, err
		}); err != nil {
			t.Fatal(err)
		}
		_, err = srv.Attest(ctx, td, payloadOf(t, ca), func(context.Context, []byte) ([]byte, error) { return bAnswer, nil })
		mustReject(t, err, "did not activate the credential")
	})

	t.Run("EKPublicNotMatchingCert", func(t *testing.T) {
		pa, pb := decodePayload(t, payloadOf(t, ca)), decodePayload(t, payloadOf(t, cb))
		pa.EKPublic, pa.AKPublic = pb.EKPublic, pb.AKPublic // a's certificate, b's keys
		_, err := srv.Attest(ctx, td, encode(t, pa), neverCalled(t))
		mustReject(t, err, "does not match the EK certificate")
	})

	t.Run("Replay", func(t *testing.T) {
		s := newServer(t, ServerConfig{ManufacturerCAs: roots, PCRs: []int{0}})
		payload := payloadOf(t, ca)
		var old []byte
		if _, err := s.Attest(ctx, td, payload, func(ctx context.Context, ch []byte) (b []byte, err error) {
			old, err = ca.Respond(ctx, ch)
			return old, err
		}); err != nil {
			t.Fatal(err)
		}
		// The same payload with the old answer: a new secret, refused.
		_, err := s.Attest(ctx, td, payload, func(context.Context, []byte) ([]byte, error) { return old, nil })
		mustReject(t, err, "did not activate the credential")
		// A fresh proof with the old quote: a stale nonce, refused.
		var oldRsp responseMsg
		if err := json.Unmarshal(old, &oldRsp); err != nil {
			t.Fatal(err)
		}
		_, err = s.Attest(ctx, td, payload, func(ctx context.Context, ch []byte) ([]byte, error) {
			b, err := ca.Respond(ctx, ch)
			if err != nil {
				return nil, err
			}
			var rsp responseMsg
			if err := json.Unmarshal(b, &rsp); err != nil {
				return nil, err
			}
			rsp.Quote, rsp.Signature = oldRsp.Quote, oldRsp.Signature
			return json.Marshal(rsp)
		})
		mustReject(t, err, "nonce")
	})

	t.Run("TamperedQuote", func(t *testing.T) {
		s := newServer(t, ServerConfig{ManufacturerCAs: roots, PCRs: []int{0, 1}})
		tamper := func(f func(*responseMsg)) error {
			_, err := s.Attest(ctx, td, payloadOf(t, ca), func(ctx context.Context, ch []byte) ([]byte, error) {
				b, err := ca.Respond(ctx, ch)
				if err != nil {
					return nil, err
				}
				var rsp responseMsg
				if err := json.Unmarshal(b, &rsp); err != nil {
					return nil, err
				}
				f(&rsp)
				return json.Marshal(rsp)
			})
			return err
		}
		mustReject(t, tamper(func(r *responseMsg) { r.PCRValues[1] = bytes.Repeat([]byte{1}, 32) }), "do not match the quoted digest")
		mustReject(t, tamper(func(r *responseMsg) { r.PCRValues = r.PCRValues[:1] }), "2 PCRs")
		mustReject(t, tamper(func(r *responseMsg) { r.PCRValues[0] = r.PCRValues[0][:20] }), "20 bytes")
		mustReject(t, tamper(func(r *responseMsg) { r.Quote[len(r.Quote)-1] ^= 1 }), "signature does not verify")
		mustReject(t, tamper(func(r *responseMsg) { r.Signature = r.Signature[:10] }), "quote signature")
		mustReject(t, tamper(func(r *responseMsg) { r.Quote = nil }), "no quote")
		// A quote the AK made, over the nonce, of other PCRs.
		_, err := s.Attest(ctx, td, payloadOf(t, ca), func(ctx context.Context, ch []byte) ([]byte, error) {
			var m challengeMsg
			if err := json.Unmarshal(ch, &m); err != nil {
				return nil, err
			}
			m.PCRs = []int{0, 2}
			return ca.Respond(ctx, encode(t, m))
		})
		mustReject(t, err, "not of the PCRs asked for")
	})

	t.Run("Relay", func(t *testing.T) {
		// A server of another trust domain relaying our challenge: a's agent,
		// configured for other.example, does not answer it.
		relayed, err := NewClient(ClientConfig{TrustDomain: otherTD, Device: a.Socket})
		if err != nil {
			t.Fatal(err)
		}
		_, err = srv.Attest(ctx, td, payloadOf(t, ca), answerWith(relayed))
		if err == nil || !strings.Contains(err.Error(), "not answered") {
			t.Fatalf("got %v, want the agent to refuse", err)
		}
		// And a proof made for other.example is refused here.
		_, err = srv.Attest(ctx, td, payloadOf(t, ca), func(ctx context.Context, ch []byte) ([]byte, error) {
			var m challengeMsg
			json.Unmarshal(ch, &m)
			m.Audience = "spiffe://other.example/spiffekit/server"
			b, _ := json.Marshal(m)
			return relayed.Respond(ctx, b)
		})
		mustReject(t, err, "did not activate")
	})

	t.Run("ConcurrentClients", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				_, err := srv.Attest(ctx, td, payloadOf(t, ca), answerWith(ca))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("EKNotPersistent", func(t *testing.T) {
		// Without the persistent EK, the agent creates it from the default
		// template: the same key, the same agent ID.
		before, err := exchange(t, srv, cb)
		if err != nil {
			t.Fatal(err)
		}
		dev, err := OpenDevice(b.Socket)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tpm2.EvictControl{
			Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
			ObjectHandle:     &tpm2.NamedHandle{Handle: 0x81010001, Name: mustName(t, dev, 0x81010001)},
			PersistentHandle: 0x81010001,
		}.Execute(dev)
		dev.Close()
		if err != nil {
			t.Fatalf("evicting the EK: %v", err)
		}
		after, err := exchange(t, srv, cb)
		if err != nil {
			t.Fatal(err)
		}
		if after.AgentID != before.AgentID {
			t.Errorf("agent ID %s, then %s", before.AgentID, after.AgentID)
		}
	})

	t.Run("ECCEK", func(t *testing.T) {
		// c without its RSA EK certificate and RSA EK: the agent takes the
		// ECC P-384 EK of the certificate at 0x01c00016.
		dev, err := OpenDevice(c.Socket)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := tpm2.NVReadPublic{NVIndex: tpm2.TPMHandle(NVIndexRSAEKCert)}.Execute(dev)
		if err == nil {
			_, err = tpm2.NVUndefineSpace{
				AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)},
				NVIndex:    tpm2.NamedHandle{Handle: tpm2.TPMHandle(NVIndexRSAEKCert), Name: rp.NVName},
			}.Execute(dev)
		}
		if err == nil {
			_, err = tpm2.EvictControl{
				Auth:             tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
				ObjectHandle:     &tpm2.NamedHandle{Handle: 0x81010001, Name: mustName(t, dev, 0x81010001)},
				PersistentHandle: 0x81010001,
			}.Execute(dev)
		}
		dev.Close()
		if err != nil {
			t.Fatalf("removing the RSA EK: %v", err)
		}
		s := newServer(t, ServerConfig{ManufacturerCAs: untrusted.Roots(t), PCRs: []int{0}})
		payload := payloadOf(t, cc)
		if ev, err := parsePayload(payload); err != nil || ev.ekPub.Type != tpm2.TPMAlgECC {
			t.Fatalf("payload: %v", err)
		}
		if _, err := s.Attest(ctx, td, payload, answerWith(cc)); err != nil {
			t.Fatalf("Attest: %v", err)
		}
	})

	t.Run("NoEKCertificate", func(t *testing.T) {
		// c without any EK certificate: the agent sends the RSA EK of the
		// default template alone, which only an allow-listed hash admits.
		dev, err := OpenDevice(c.Socket)
		if err != nil {
			t.Fatal(err)
		}
		for _, idx := range []tpm2.TPMHandle{NVIndexRSAEKCert, NVIndexECCP256EKCert, NVIndexECCP384EKCert} {
			rp, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(dev)
			if err != nil {
				continue // not defined
			}
			if _, err := (tpm2.NVUndefineSpace{
				AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)},
				NVIndex:    tpm2.NamedHandle{Handle: idx, Name: rp.NVName},
			}).Execute(dev); err != nil {
				t.Fatalf("removing the EK certificate at %#x: %v", uint32(idx), err)
			}
		}
		dev.Close()
		payload := payloadOf(t, cc)
		p := decodePayload(t, payload)
		if len(p.EKCert) != 0 {
			t.Fatal("a certificate sent")
		}
		_, err = srv.Attest(ctx, td, payload, neverCalled(t))
		mustReject(t, err, "no EK certificate")
		ev, err := parsePayload(payload)
		if err != nil {
			t.Fatal(err)
		}
		hash, err := EKHash(ev.ekKey)
		if err != nil {
			t.Fatal(err)
		}
		s := newServer(t, ServerConfig{ManufacturerCAs: roots, EKHashes: []string{hash}})
		res, err := s.Attest(ctx, td, payload, answerWith(cc))
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		if res.AgentID.String() != "spiffe://example.org/spiffekit/agent/tpm/"+hash {
			t.Errorf("agent ID %s", res.AgentID)
		}
	})

	if os.Getenv("TPM_WRITE_FIXTURE") != "" {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile("testdata/payload.json", payloadOf(t, ca), 0o644)
		os.WriteFile("testdata/roots.pem", []byte(""), 0o644)
	}
}
