package tpm

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

// BenchmarkServerAttest measures the server's side of an attestation
// against a software TPM: the payload's checks, the EK certificate's
// chain, the credential made in software, the proof and, with PCRs, the
// quote. The TPM's own time (ActivateCredential, the quote) is measured
// apart and reported as tpm-ns/op; server-ns/op and verifications/s leave
// it out.
func BenchmarkServerAttest(b *testing.B) {
	ca := swtpmtest.NewCA(b)
	sw := swtpmtest.New(b, ca)
	client := newClient(b, sw)
	ctx := context.Background()
	payload, err := client.Payload(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		pcrs []int
	}{{"EKCert", nil}, {"EKCertAndPCRs", []int{0, 7}}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := newServer(b, ServerConfig{ManufacturerCAs: ca.Roots(b), PCRs: bc.pcrs})
			var inTPM time.Duration
			answer := func(ctx context.Context, ch []byte) ([]byte, error) {
				start := time.Now()
				defer func() { inTPM += time.Since(start) }()
				return client.Respond(ctx, ch)
			}
			var res attest.NodeResult
			start := time.Now()
			for b.Loop() {
				if res, err = srv.Attest(ctx, td, payload, answer); err != nil {
					b.Fatal(err)
				}
			}
			total := time.Since(start)
			if res.AgentID.IsZero() {
				b.Fatal("no agent ID")
			}
			server := (total - inTPM) / time.Duration(b.N)
			b.ReportMetric(float64(server.Nanoseconds()), "server-ns/op")
			b.ReportMetric(float64(inTPM.Nanoseconds())/float64(b.N), "tpm-ns/op")
			b.ReportMetric(float64(time.Second)/float64(server), "verifications/s")
		})
	}
}

// BenchmarkDevIDServerAttest measures the server's side of a tpm_devid
// attestation against a software TPM holding an ECC P-256 DevID key: the
// payload's checks, both certificate chains, the credential, the proof,
// the certification and the DevID signature. The TPM's own time is
// reported apart, as in BenchmarkServerAttest.
func BenchmarkDevIDServerAttest(b *testing.B) {
	ekCA := swtpmtest.NewCA(b)
	sw := swtpmtest.New(b, ekCA)
	ca := newDevIDCA(b, "devid")
	k := provisionDevID(b, sw, eccDevIDTemplate(), nil)
	client := newDevIDClient(b, sw, k, ca.issue(b, k.key, "node", time.Time{}, time.Time{}), nil)
	srv := newDevIDServer(b, DevIDServerConfig{DevIDCAs: []*x509.Certificate{ca.root}, EndorsementCAs: ekCA.Roots(b)})
	ctx := context.Background()
	payload, err := client.Payload(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var inTPM time.Duration
	answer := func(ctx context.Context, ch []byte) ([]byte, error) {
		start := time.Now()
		defer func() { inTPM += time.Since(start) }()
		return client.Respond(ctx, ch)
	}
	var res attest.NodeResult
	start := time.Now()
	for b.Loop() {
		if res, err = srv.Attest(ctx, td, payload, answer); err != nil {
			b.Fatal(err)
		}
	}
	total := time.Since(start)
	if res.AgentID.IsZero() {
		b.Fatal("no agent ID")
	}
	server := (total - inTPM) / time.Duration(b.N)
	b.ReportMetric(float64(server.Nanoseconds()), "server-ns/op")
	b.ReportMetric(float64(inTPM.Nanoseconds())/float64(b.N), "tpm-ns/op")
	b.ReportMetric(float64(time.Second)/float64(server), "verifications/s")
}
