package cmdline

import (
	"fmt"
	"strings"
)

// List is the repeatable key: each value given appends to the list, after
// parse checks and converts it, so that a bad value is a usage error that
// names the key. From a configuration file, a JSON array gives each of its
// elements in turn. The values of one source replace those of a source of
// lower precedence: a flag given replaces the file's whole list.
type List[T any] struct {
	dst   *[]T
	parse func(string) (T, error)
	sep   string
}

// NewList returns a List appending to *dst. If sep is not empty, a value
// is also split at sep, with spaces around each part and empty parts left
// out, so that "-server a:1,b:2" gives two values; leave sep empty where a
// value may hold it.
func NewList[T any](dst *[]T, parse func(string) (T, error), sep string) *List[T] {
	return &List[T]{dst: dst, parse: parse, sep: sep}
}

// Set parses s and appends its value or values.
func (l *List[T]) Set(s string) error {
	parts := []string{s}
	if l.sep != "" {
		parts = strings.Split(s, l.sep)
	}
	for _, p := range parts {
		if l.sep != "" {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
		}
		v, err := l.parse(p)
		if err != nil {
			return err
		}
		*l.dst = append(*l.dst, v)
	}
	return nil
}

// String returns the values separated by commas.
func (l *List[T]) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	parts := make([]string, len(*l.dst))
	for i, v := range *l.dst {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}

// Value is a key of a type the flag package does not have, such as a
// SPIFFE ID: parse checks and converts the text, so that a bad value is a
// usage error that names the key.
type Value[T any] struct {
	dst   *T
	parse func(string) (T, error)
}

// NewValue returns a Value setting *dst.
func NewValue[T any](dst *T, parse func(string) (T, error)) *Value[T] {
	return &Value[T]{dst: dst, parse: parse}
}

// Set parses s and sets the value.
func (v *Value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.dst = x
	return nil
}

// String returns the value as text.
func (v *Value[T]) String() string {
	if v == nil || v.dst == nil {
		return ""
	}
	return fmt.Sprint(*v.dst)
}

// Text is the parse function of a key whose values are any text.
func Text(s string) (string, error) { return s, nil }
