package keymanager_test

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
)

func ExampleNewDisk() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	keys, err := keymanager.NewDisk(filepath.Join(dir, "ca"))
	if err != nil {
		log.Fatal(err)
	}
	signer, err := keys.GenerateKey(ctx, "x509-1", ca.ECP256)
	if err != nil {
		log.Fatal(err)
	}

	// Another process finds the same key in the same directory.
	again, err := keymanager.NewDisk(filepath.Join(dir, "ca"))
	if err != nil {
		log.Fatal(err)
	}
	loaded, err := again.Key(ctx, "x509-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same key:", loaded.Public().(*ecdsa.PublicKey).Equal(signer.Public()))

	if err := again.DestroyKey(ctx, "x509-1"); err != nil {
		log.Fatal(err)
	}
	_, err = again.Key(ctx, "x509-1")
	fmt.Println("destroyed:", errors.Is(err, ca.ErrKeyNotFound))
	// Output:
	// same key: true
	// destroyed: true
}
