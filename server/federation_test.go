package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

var partnerTD = spiffeid.RequireTrustDomainFromString("partner.test")

// endpointID is the SPIFFE ID of a server's bundle endpoint (https_spiffe).
func endpointID(td spiffeid.TrustDomain) spiffeid.ID {
	return spiffeid.RequireFromPath(td, nodeapi.ServerPath)
}

func endpointURL(s *nodetest.Server) string { return "https://" + s.FederationAddr().String() + "/" }

// spiffeRelationship is the relationship with another server's
// self-serving https_spiffe endpoint.
func spiffeRelationship(t *testing.T, other *nodetest.Server) server.Relationship {
	return server.Relationship{
		TrustDomain:      other.TrustDomain(),
		URL:              endpointURL(other),
		Profile:          server.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID: endpointID(other.TrustDomain()),
		BootstrapBundle:  other.Bundle(),
	}
}

func x509Source(t *testing.T, addr string) *workloadapi.X509Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	return src
}

func storedBundle(t testing.TB, s *nodetest.Server, td spiffeid.TrustDomain) *spiffebundle.Bundle {
	t.Helper()
	fb, err := s.Stores.Bundles.GetBundle(t.Context(), td)
	if err != nil {
		return nil
	}
	b, err := spiffebundle.Parse(td, fb.Document)
	require.NoError(t, err)
	return b
}

// exchange has the client workload dial the server workload with mTLS,
// each authorizing the other's exact SPIFFE ID, and exchange a line. It
// returns the ID the server saw.
func exchange(t *testing.T, client, srv *workloadapi.X509Source, clientID, serverID spiffeid.ID) (spiffeid.ID, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	lis, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(clientID), srv))
	if err != nil {
		return spiffeid.ID{}, err
	}
	defer lis.Close()
	type result struct {
		id  spiffeid.ID
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		id, err := spiffetls.PeerIDFromConn(conn)
		if err != nil {
			got <- result{err: err}
			return
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err == nil {
			_, err = fmt.Fprintf(conn, "pong %s", line)
		}
		got <- result{id: id, err: err}
	}()
	conn, err := spiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(serverID), client))
	if err != nil {
		lis.Close()
		<-got
		return spiffeid.ID{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(conn, "ping"); err != nil {
		<-got
		return spiffeid.ID{}, err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	r := <-got
	if err != nil {
		return spiffeid.ID{}, err
	}
	if r.err != nil {
		return spiffeid.ID{}, r.err
	}
	if reply != "pong ping\n" {
		return spiffeid.ID{}, fmt.Errorf("unexpected reply %q", reply)
	}
	return r.id, nil
}

// signedBy reports whether the source's X509-SVID chains to ca.
func signedBy(src *workloadapi.X509Source, td spiffeid.TrustDomain, ca *x509.Certificate) bool {
	svid, err := src.GetX509SVID()
	if err != nil {
		return false
	}
	_, _, err = x509svid.Verify(svid.Certificates, x509bundle.FromX509Authorities(td, []*x509.Certificate{ca}))
	return err == nil
}

func hasX509Authority(src *workloadapi.X509Source, td spiffeid.TrustDomain, ca *x509.Certificate) bool {
	b, err := src.GetX509BundleForTrustDomain(td)
	return err == nil && b.HasX509Authority(ca)
}

// TestFederationEndToEnd: two trust domains federate both ways over
// https_spiffe, bootstrapped with each other's bundle as an operator would; a
// workload of each does mTLS with the other by exact SPIFFE ID; a CA
// rotation in one domain reaches the other's workloads without a restart.
func TestFederationEndToEnd(t *testing.T) {
	const refresh = 100 * time.Millisecond
	orgDir := t.TempDir()
	org := nodetest.StartServerIn(t, orgDir, server.Config{FederationBind: "127.0.0.1:0"})
	partner := start(t, server.Config{
		TrustDomain: partnerTD, FederationBind: "127.0.0.1:0", FederationRefresh: refresh,
		Federation: []server.Relationship{spiffeRelationship(t, org)},
	})
	// The operator of example.org restarts it with the relationship the
	// other way (Fed rule 4: mutual federation is two relationships).
	orgAddr, orgFed := org.Addr().String(), org.FederationAddr().String()
	org.Stop()
	org = nodetest.StartServerIn(t, orgDir, server.Config{
		BindAddr: orgAddr, FederationBind: orgFed, FederationRefresh: refresh,
		Federation: []server.Relationship{spiffeRelationship(t, partner)},
	})

	require.Eventually(t, func() bool {
		return storedBundle(t, org, partnerTD) != nil && storedBundle(t, partner, td) != nil
	}, 15*time.Second, 20*time.Millisecond, "each server fetches and stores the other's bundle")

	orgAgent := nodetest.StartAgent(t, org.AgentConfig(t))
	partnerAgent := nodetest.StartAgent(t, partner.AgentConfig(t))
	webID := spiffeid.RequireFromPath(td, "/web")
	apiID := spiffeid.RequireFromPath(partnerTD, "/api")
	_, err := org.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: webID, ParentID: orgAgent.ID(), Selectors: []attest.Selector{ourUID},
		FederatesWith: []spiffeid.TrustDomain{partnerTD},
	})
	require.NoError(t, err)
	_, err = partner.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: apiID, ParentID: partnerAgent.ID(), Selectors: []attest.Selector{ourUID},
		FederatesWith: []spiffeid.TrustDomain{td},
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return orgAgent.Stats().Entries == 1 && partnerAgent.Stats().Entries == 1
	}, 15*time.Second, 10*time.Millisecond)

	web := x509Source(t, orgAgent.Addr)
	api := x509Source(t, partnerAgent.Addr)
	orgCA := org.CA().X509Authority().Certificate()
	require.Eventually(t, func() bool {
		return hasX509Authority(web, partnerTD, partner.CA().X509Authority().Certificate()) &&
			hasX509Authority(api, td, orgCA)
	}, 15*time.Second, 20*time.Millisecond, "each workload gets the other trust domain's bundle (Fed rule 5)")

	got, err := exchange(t, web, api, webID, apiID)
	require.NoError(t, err)
	assert.Equal(t, webID, got)
	got, err = exchange(t, api, web, apiID, webID)
	require.NoError(t, err)
	assert.Equal(t, apiID, got)

	// Rotation in example.org: the next CA is published first (Fed rule
	// 24) and reaches partner.test's workload through the bundle endpoint.
	seqBefore, _ := org.Bundle().SequenceNumber()
	next, err := org.CA().PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return hasX509Authority(api, td, next.Certificate) },
		15*time.Second, 20*time.Millisecond, "the prepared CA reaches the other domain's workload")
	seqPrepared, _ := storedBundle(t, partner, td).SequenceNumber()
	assert.Greater(t, seqPrepared, seqBefore, "the served bundle's sequence grew")

	require.NoError(t, org.CA().ActivateX509CA(t.Context()))
	require.Eventually(t, func() bool { return signedBy(web, td, next.Certificate) },
		15*time.Second, 20*time.Millisecond, "the example.org workload gets an SVID from the new CA")
	got, err = exchange(t, web, api, webID, apiID)
	require.NoError(t, err, "partner.test accepts an SVID of the new CA without a restart")
	assert.Equal(t, webID, got)
	got, err = exchange(t, api, web, apiID, webID)
	require.NoError(t, err)
	assert.Equal(t, apiID, got)

	// The example.org endpoint now presents an SVID of the new CA, which
	// the bootstrap bundle does not hold: partner.test keeps fetching
	// because it authenticates with the latest stored bundle (Fed rule 17).
	key, err := org.CA().PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		b := storedBundle(t, partner, td)
		return b != nil && b.HasJWTAuthority(key.ID)
	}, 15*time.Second, 20*time.Millisecond, "a change after the rotation still arrives")
}

// TestBundleSequenceGrowsOnRotation: every change of the served bundle
// raises its sequence number, and the bundle endpoint serves the new one.
func TestBundleSequenceGrowsOnRotation(t *testing.T) {
	s := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	fetchOwn := func() *spiffebundle.Bundle {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		b, err := federation.FetchBundle(ctx, td, endpointURL(s), federation.WithSPIFFEAuth(s.Bundle(), endpointID(td)))
		require.NoError(t, err)
		return b
	}
	first := fetchOwn()
	seq1, ok := first.SequenceNumber()
	require.True(t, ok)
	cur, _ := s.Bundle().SequenceNumber()
	assert.Equal(t, cur, seq1, "the endpoint serves the server's bundle")

	_, err := s.CA().PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(s.Bundle().X509Authorities()) == 2 }, 10*time.Second, 10*time.Millisecond)
	seq2, _ := s.Bundle().SequenceNumber()
	assert.Greater(t, seq2, seq1)
	require.Eventually(t, func() bool {
		n, _ := fetchOwn().SequenceNumber()
		return n == seq2
	}, 10*time.Second, 10*time.Millisecond, "the endpoint serves the new sequence")

	_, err = s.CA().PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { n, _ := s.Bundle().SequenceNumber(); return n > seq2 }, 10*time.Second, 10*time.Millisecond)
	b := fetchOwn()
	seq3, _ := b.SequenceNumber()
	assert.Greater(t, seq3, seq2)
	assert.Len(t, b.X509Authorities(), 2)

	// Fed rule 9: the endpoint asks for no client certificate; Fed rule 7:
	// TLS 1.2 is accepted. The chain is checked by FetchBundle above.
	asked := false
	conn, err := (&tls.Dialer{Config: &tls.Config{
		MaxVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // only the handshake's shape is under test
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = true
			return &tls.Certificate{}, nil
		},
	}}).DialContext(t.Context(), "tcp", s.FederationAddr().String())
	require.NoError(t, err)
	state := conn.(*tls.Conn).ConnectionState()
	conn.Close()
	assert.False(t, asked, "no client certificate is requested")
	assert.Equal(t, uint16(tls.VersionTLS12), state.Version)
	id, err := x509svid.IDFromCert(state.PeerCertificates[0])
	require.NoError(t, err)
	assert.Equal(t, endpointID(td), id, "the endpoint presents the server's X509-SVID (Fed rule 15)")

	// Fed rule 7: no CBC suite.
	_, err = (&tls.Dialer{Config: &tls.Config{
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
		InsecureSkipVerify: true, // only the handshake's shape is under test
	}}).DialContext(t.Context(), "tcp", s.FederationAddr().String())
	require.ErrorContains(t, err, "remote error: tls: handshake failure", "the server has no suite in common")
}
