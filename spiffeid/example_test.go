package spiffeid_test

import (
	"fmt"

	"github.com/spiffekit/spiffekit/spiffeid"
)

func ExampleFromString() {
	id, err := spiffeid.FromString("spiffe://example.org/ns/prod/sa/billing")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(id.TrustDomain(), id.Path())

	_, err = spiffeid.FromString("spiffe://example.org/ns/../admin")
	fmt.Println(err)
	// Output:
	// example.org /ns/prod/sa/billing
	// spiffeid: path cannot contain dot segments
}

func ExampleFromSegments() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id, err := spiffeid.FromSegments(td, "ns", "prod", "sa", "web")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(id)
	// Output: spiffe://example.org/ns/prod/sa/web
}

func ExampleMatchMemberOf() {
	match := spiffeid.MatchMemberOf(spiffeid.RequireTrustDomainFromString("example.org"))
	fmt.Println(match(spiffeid.RequireFromString("spiffe://example.org/web")))
	fmt.Println(match(spiffeid.RequireFromString("spiffe://evil.org/web")))
	// Output:
	// <nil>
	// spiffeid: unexpected trust domain "evil.org"
}
