package storerun

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runner is a store with a Run method, comparable.
type runner struct{ name string }

func (*runner) Run(context.Context) error { return nil }

// sliceRunner is a store with a Run method whose type is not comparable.
type sliceRunner []string

func (sliceRunner) Run(context.Context) error { return nil }

// Property: each store value with a Run method is run once, in the order
// of the stores, however many stores it serves; stores without one, nil
// ones and values of an uncomparable type are told apart without a panic.
func TestDistinct(t *testing.T) {
	a, b := &runner{"a"}, &runner{"b"}
	s1, s2 := sliceRunner{"x"}, sliceRunner{"x"}
	got := Distinct(a, "no Run", a, nil, b, s1, s2, a, b)
	require.Len(t, got, 4, "a, b and both uncomparable values")
	assert.Same(t, a, got[0])
	assert.Same(t, b, got[1])
	assert.Equal(t, s1, got[2])
	assert.Equal(t, s2, got[3])
	assert.Empty(t, Distinct())
}
