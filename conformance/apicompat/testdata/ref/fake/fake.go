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

// Renamed differs only in parameter names, which is compatible.
func Renamed(a int, b ...string) (n int, err error) { return 0, nil }

// Variadic becomes a slice parameter in the candidate.
func Variadic(b ...string) {}

// Shapes uses every composite type; it is identical on both sides.
func Shapes(a [4]byte, m map[string]*dep.Thing, c <-chan int, s chan<- error, f func(int) bool) chan string {
	return nil
}

// Pair changes a constraint in the candidate.
type Pair[K comparable, V any] struct {
	Key   K
	Value V
}

// WasStruct is not a struct in the candidate.
type WasStruct struct{ A int }

// WasIface is not an interface in the candidate.
type WasIface interface{ M() }

// Wrapper embeds Thing here and names it in the candidate.
type Wrapper struct {
	dep.Thing
}

// AliasChanged aliases another type in the candidate.
type AliasChanged = dep.Thing

// Reader loses a method in the candidate.
type Reader interface {
	Read(p []byte) (int, error)
	Name() string
}

// Number has a smaller type set in the candidate.
type Number interface{ ~int | ~int64 }

// Option is sealed on both sides, with another unexported method in the
// candidate; users cannot tell the difference.
type Option interface{ apply(*Box) }

// Combined lists its methods here and embeds interfaces in the candidate.
type Combined interface {
	io.Reader
	Close() error
}

// Open can be implemented by anyone here; the candidate seals it.
type Open interface{ Get() int }
