package spiffebundle_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func ExampleParse() {
	// The trust domain comes from configuration, never from the document.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	doc, err := os.ReadFile(filepath.Join("testdata", "example.org.json"))
	if err != nil {
		panic(err)
	}

	bundle, err := spiffebundle.Parse(td, doc)
	if err != nil {
		panic(err)
	}
	seq, _ := bundle.SequenceNumber()
	hint, _ := bundle.RefreshHint()
	fmt.Println("sequence:", seq, "refresh hint:", hint)
	fmt.Println("X.509 roots:", bundle.X509Authorities()[0].Subject.CommonName)
	fmt.Println("JWT key:", bundle.HasJWTAuthority("jwt-2026-11-a"))
	// Output:
	// sequence: 42 refresh hint: 5m0s
	// X.509 roots: example.org root
	// JWT key: true
}

func ExampleBundle_Marshal() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	doc, err := os.ReadFile(filepath.Join("testdata", "example.org.json"))
	if err != nil {
		panic(err)
	}
	bundle, err := spiffebundle.Parse(td, doc)
	if err != nil {
		panic(err)
	}

	// Publish the next version: the X.509 root is retired, the sequence bumped.
	bundle.SetX509Authorities(nil)
	bundle.SetSequenceNumber(43)
	bundle.SetRefreshHint(90 * time.Second)

	out, err := bundle.Marshal()
	if err != nil {
		panic(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		panic(err)
	}
	fmt.Println(pretty.String())
	// Output:
	// {
	//   "keys": [
	//     {
	//       "use": "jwt-svid",
	//       "kty": "EC",
	//       "kid": "jwt-2026-11-a",
	//       "crv": "P-256",
	//       "x": "U06wt3DmxYNCRxQO0-yVXsv0w3gFD_UxAZvXGBIUR4w",
	//       "y": "ze1JOXY16NuVHSzzYAhgp5qSlMCQaD2Sm2j6W1iZJPA"
	//     }
	//   ],
	//   "spiffe_sequence": 43,
	//   "spiffe_refresh_hint": 90
	// }
}
