// Package dep is a dependency of the reference fake package.
package dep

// Thing is referenced from fake's signatures.
type Thing struct{ N int }
