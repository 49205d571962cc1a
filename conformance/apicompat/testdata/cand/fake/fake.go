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

// Renamed differs only in parameter names, which is compatible.
func Renamed(x int, ys ...string) (int, error) { return 0, nil }

// Variadic takes a slice here and is variadic in the reference.
func Variadic(b []string) {}

// Shapes uses every composite type; it is identical on both sides.
func Shapes(b [4]byte, x map[string]*dep.Thing, y <-chan int, z chan<- error, g func(n int) (ok bool)) chan string {
	return nil
}

// Pair changes a constraint in the reference.
type Pair[K comparable, V comparable] struct {
	Key   K
	Value V
}

// WasStruct is a struct in the reference.
type WasStruct int

// WasIface is an interface in the reference.
type WasIface struct{}

// Wrapper names Thing here and embeds it in the reference.
type Wrapper struct {
	Thing dep.Thing
}

// AliasChanged aliases another type in the reference.
type AliasChanged = int

// Reader lacks Name.
type Reader interface {
	Read(p []byte) (int, error)
}

// Number has a larger type set in the reference.
type Number interface{ ~int }

// Option is sealed on both sides, with another unexported method here.
type Option interface{ configure(*Box) }

// Combined embeds interfaces here and lists its methods in the reference.
type Combined interface {
	io.ReadCloser
}

// Open is sealed here: types implementing the reference would not
// implement it.
type Open interface {
	Get() int
	seal()
}
