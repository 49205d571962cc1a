package rotation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func Example() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	// In production: KeyManager: keymanager.NewDisk(dir), Journal:
	// rotation.NewFileJournal(path), and go m.Run(ctx).
	m, err := rotation.New(ctx, rotation.Config{
		TrustDomain: td,
		Now:         func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}

	seq, _ := m.Bundle().SequenceNumber()
	fmt.Println("bundle sequence:", seq, "X.509 roots:", len(m.Bundle().X509Authorities()))

	// An SVID minted shortly before the CA reaches half its life.
	now = now.Add(11*time.Hour + 30*time.Minute)
	workloadKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id := spiffeid.RequireFromPath(td, "/web")
	chain, err := m.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: workloadKey.Public(), ID: id})
	if err != nil {
		log.Fatal(err)
	}

	// At half its life, the next CA is prepared and published.
	now = now.Add(30 * time.Minute)
	if err := m.Rotate(ctx); err != nil {
		log.Fatal(err)
	}
	seq, _ = m.Bundle().SequenceNumber()
	fmt.Println("bundle sequence:", seq, "X.509 roots:", len(m.Bundle().X509Authorities()))

	// The SVID minted before still verifies against the current bundle.
	verified, _, err := x509svid.Verify(chain, m.Bundle(), x509svid.WithTime(now))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", verified)
	// Output:
	// bundle sequence: 1 X.509 roots: 1
	// bundle sequence: 2 X.509 roots: 2
	// verified: spiffe://example.org/web
}
