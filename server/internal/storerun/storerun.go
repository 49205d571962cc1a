// Package storerun finds the long-lived parts of an issuing server's
// stores: the store values with a Run method (registry/sqlstore's
// PostgreSQL listener), each once however many of the server's stores it
// serves.
package storerun

import (
	"context"
	"reflect"
	"slices"
)

// A Runner is a store with a long-lived part, such as
// registry/sqlstore's PostgreSQL listener.
type Runner interface {
	Run(ctx context.Context) error
}

// Distinct returns the distinct values of stores that are Runners, in
// their order. A store that is not one, nil or not, is left out; a value
// of an uncomparable type is compared without a panic (and is distinct).
func Distinct(stores ...any) []Runner {
	var out []Runner
	for _, s := range stores {
		r, ok := s.(Runner)
		if ok && !slices.ContainsFunc(out, func(o Runner) bool { return sameValue(o, r) }) {
			out = append(out, r)
		}
	}
	return out
}

// sameValue reports whether a and b are the same value, without the panic
// of comparing values of an uncomparable type.
func sameValue(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.Type() == vb.Type() && va.Comparable() && vb.Comparable() && a == b
}
