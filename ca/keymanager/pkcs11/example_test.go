package pkcs11_test

import (
	"context"
	"log"
	"os"
	"path/filepath"

	"github.com/spiffekit/spiffekit/ca/keymanager/pkcs11"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A self-rotating CA whose keys live in an HSM. It needs a token (here
// SoftHSM2's, initialised with softhsm2-util --init-token), so it is not
// run as a test.
func ExampleOpen() {
	ctx := context.Background()
	keys, err := pkcs11.Open(pkcs11.Config{
		Module:     "/usr/lib/softhsm/libsofthsm2.so",
		TokenLabel: "spiffekit-ca",
		PIN:        os.Getenv("CA_TOKEN_PIN"),
	})
	if err != nil {
		log.Fatal(err) // a wrong PIN or an unknown token fail here
	}
	defer keys.Close()

	m, err := rotation.New(ctx, rotation.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("example.org"),
		KeyManager:  keys,
		Journal:     rotation.NewFileJournal(filepath.Join("/var/lib/ca", "journal.json")),
	})
	if err != nil {
		log.Fatal(err) // a key the journal names but the token lacks fails here
	}
	log.Println("active CA:", m.X509CAs()[0].ID)
}
