// Package fake is the candidate side of the checker's self-test.
package fake

import (
	"io"

	"github.com/spiffekit/spiffekit/conformance/apicompat/testdata/cand/dep"
)

// Same is identical on both sides.
func Same(t dep.Thing, r io.Reader) (*dep.Thing, error) { return nil, nil }

// Changed takes a string here and an int in the reference.
func Changed(s string) error { return nil }

// NowVar is a var here and a func in the reference.
var NowVar = func() {}

// Answer has another value in the reference.
const Answer = 43

// Name is identical on both sides.
const Name = "fake"

// Default is identical on both sides.
var Default = &dep.Thing{}

// Extra does not exist in the reference; extras are allowed.
func Extra() {}

// Box lacks Dropped and moves Value to a pointer receiver.
type Box struct {
	Kept  dep.Thing
	other string
}

// Value is a pointer method here and a value method in the reference.
func (b *Box) Value() int { return len(b.other) }

// Ptr is identical on both sides.
func (b *Box) Ptr(x dep.Thing) bool { return x.N == len(b.other) }

// Source has one method more than the reference.
type Source interface {
	Get(dep.Thing) (*Box, error)
	Close() error
}

// Mode changes its underlying type in the reference.
type Mode string

// Alias is an alias on both sides.
type Alias = dep.Thing

// Set is generic on both sides.
type Set[T comparable] struct{ m map[T]struct{} }

// Has is identical on both sides.
func (s *Set[T]) Has(v T) bool { _, ok := s.m[v]; return ok }
