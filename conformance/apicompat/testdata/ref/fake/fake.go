// Package fake is the reference side of the checker's self-test.
package fake

import (
	"io"

	"github.com/spiffekit/spiffekit/conformance/apicompat/testdata/ref/dep"
)

// Same is identical on both sides.
func Same(t dep.Thing, r io.Reader) (*dep.Thing, error) { return nil, nil }

// Gone is missing from the candidate.
func Gone() {}

// Changed takes an int here and a string in the candidate.
func Changed(n int) error { return nil }

// NowVar is a func here and a var in the candidate.
func NowVar() {}

// Answer has another value in the candidate.
const Answer = 42

// Name is identical on both sides.
const Name = "fake"

// Default is identical on both sides.
var Default = &dep.Thing{}

// Box has a field the candidate lacks and methods whose receivers move.
type Box struct {
	Kept    dep.Thing
	Dropped []byte
	hidden  int
}

// Value is a value method here and a pointer method in the candidate.
func (b Box) Value() int { return b.hidden }

// Ptr is identical on both sides.
func (b *Box) Ptr(x dep.Thing) bool { return x.N == b.hidden }

// Lost is missing from the candidate.
func (b *Box) Lost() {}

// Source gains a method in the candidate.
type Source interface {
	Get(dep.Thing) (*Box, error)
}

// Mode changes its underlying type in the candidate.
type Mode int

// Alias is an alias on both sides.
type Alias = dep.Thing

// Set is generic on both sides.
type Set[T comparable] struct{ m map[T]struct{} }

// Has is identical on both sides.
func (s *Set[T]) Has(v T) bool { _, ok := s.m[v]; return ok }
