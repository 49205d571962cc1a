package spiffeid

import (
	"fmt"
	"strings"
)

// ValidatePath reports whether path is a valid SPIFFE ID path: empty (no
// path), or one or more "/segment" parts whose segments are non-empty, are not
// "." or "..", and use only letters, digits, '.', '-' and '_'. A trailing
// slash is invalid. See the SPIFFE-ID standard, section 2.2.
func ValidatePath(path string) error {
	if path == "" {
		return nil
	}
	if path[0] != '/' {
		return errNoLeadingSlash
	}
	return validateAbsPath(path)
}

// checkSegment checks the rules of a segment whose characters are already known
// to be valid.
func checkSegment(seg string) error {
	switch seg {
	case "":
		return errEmptySegment // ID rule 12
	case ".", "..":
		return errDotSegment // ID rule 13
	}
	return nil
}

// ValidatePathSegment reports whether segment can be one segment of a SPIFFE
// ID path: non-empty, not "." or "..", and made only of letters, digits, '.',
// '-' and '_' (so it never contains a slash).
func ValidatePathSegment(segment string) error {
	for i := 0; i < len(segment); i++ {
		if charClass[segment[i]]&classPath == 0 {
			return errBadPathSegmentChar
		}
	}
	return checkSegment(segment)
}

// JoinPathSegments joins path segments into a path, putting a slash before
// each one. Every segment must pass [ValidatePathSegment]. With no segments it
// returns the empty path.
func JoinPathSegments(segments ...string) (string, error) {
	n := 0
	for _, s := range segments {
		if err := ValidatePathSegment(s); err != nil {
			return "", err
		}
		n += 1 + len(s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(s)
	}
	return b.String(), nil
}

// FormatPath formats a path with [fmt.Sprintf] and returns it if it passes
// [ValidatePath].
func FormatPath(format string, args ...any) (string, error) {
	path := fmt.Sprintf(format, args...)
	if err := ValidatePath(path); err != nil {
		return "", err
	}
	return path, nil
}
