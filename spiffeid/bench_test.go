package spiffeid_test

import (
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
)

var sinkID spiffeid.ID

func BenchmarkFromString(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		id, err := spiffeid.FromString("spiffe://example.org/ns/staging/sa/default")
		if err != nil {
			b.Fatal(err)
		}
		sinkID = id
	}
}

var sinkString string

func BenchmarkIDString(b *testing.B) {
	id := spiffeid.RequireFromString("spiffe://example.org/ns/staging/sa/default")
	b.ReportAllocs()
	for b.Loop() {
		sinkString = id.String()
	}
}
