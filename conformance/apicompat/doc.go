// Package apicompat checks that one Go package is source-compatible with
// another: every exported identifier of a reference package must exist in a
// candidate package with the same kind and an identical signature once the
// reference module's import paths are mapped onto the candidate's.
//
// The tests of this package apply it to each package spiffekit shares with
// go-spiffe v2.9.0:
//
//	pkgs, err := apicompat.Load(".", "github.com/spiffe/go-spiffe/v2/spiffeid",
//		"github.com/spiffekit/spiffekit/spiffeid")
//	if err != nil { ... }
//	diffs := apicompat.Compare(pkgs["github.com/spiffe/go-spiffe/v2/spiffeid"],
//		pkgs["github.com/spiffekit/spiffekit/spiffeid"],
//		apicompat.PrefixMapper("github.com/spiffe/go-spiffe/v2", "github.com/spiffekit/spiffekit"))
//	for _, d := range diffs {
//		fmt.Println(d)
//	}
package apicompat
