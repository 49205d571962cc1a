package witbundle_test

import (
	"fmt"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func ExampleParse() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	// A Workload API WIT bundle: a plain JWK Set, one key per kid.
	doc := []byte(`{"keys":[{"kty":"EC","kid":"wit-2026-11-a","crv":"P-256",
		"x":"U06wt3DmxYNCRxQO0-yVXsv0w3gFD_UxAZvXGBIUR4w",
		"y":"ze1JOXY16NuVHSzzYAhgp5qSlMCQaD2Sm2j6W1iZJPA"}]}`)

	bundle, err := witbundle.Parse(td, doc)
	if err != nil {
		panic(err)
	}
	key, ok := bundle.FindWITAuthority("wit-2026-11-a")
	fmt.Printf("%t %T\n", ok, key)

	out, _ := bundle.Marshal()
	fmt.Println(string(out))
	// Output:
	// true *ecdsa.PublicKey
	// {"keys":[{"kty":"EC","kid":"wit-2026-11-a","crv":"P-256","x":"U06wt3DmxYNCRxQO0-yVXsv0w3gFD_UxAZvXGBIUR4w","y":"ze1JOXY16NuVHSzzYAhgp5qSlMCQaD2Sm2j6W1iZJPA"}]}
}
