package spiffeid

import "math/bits"

// The parsers check eight bytes at a time: a SPIFFE ID is ASCII, and every
// character class of the standard is a union of a few byte ranges, which can be
// tested on all eight bytes of a uint64 at once ("SIMD within a register").
// Every function below assumes that no byte of its word has its high bit set;
// callers check that first (highs), since any byte >= 0x80 is invalid anyway.

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
	low7  = 0x7f7f7f7f7f7f7f7f
)

// load8 reads s[i:i+8] as a little-endian word; the compiler turns it into one
// load.
func load8(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// The classifiers below return words whose bytes have their high bit set for
// the bytes of x that belong to the class; the other bits are garbage until the
// caller masks the result with highs, once, after combining classes.

// within classifies the bytes of x in [lo, hi]: adding 0x80-lo carries into a
// byte's high bit exactly when the byte is >= lo, and never into the next byte
// since every byte is below 0x80.
func within(x uint64, lo, hi byte) uint64 {
	return (x + ones*uint64(0x80-lo)) &^ (x + ones*uint64(0x80-hi-1))
}

// equal classifies the bytes of x equal to c, exactly: a byte of x^c is zero
// exactly when adding 0x7f leaves its high bit clear.
func equal(x uint64, c byte) uint64 {
	return ^((x ^ ones*uint64(c)) + low7)
}

// tdClass classifies the bytes of x that may appear in a trust domain name
// (ID rule 4): a-z, 0-9, '-', '.', '_'. '-' '.' '/' and the digits are one
// range; '/' is removed from it.
func tdClass(x uint64) uint64 {
	return within(x, 'a', 'z') | within(x, '-', '9')&^equal(x, '/') | equal(x, '_')
}

// validateTrustDomainChars checks that every byte of name is a trust domain
// character (ID rule 4).
func validateTrustDomainChars(name string) bool {
	i := 0
	for ; i+8 <= len(name); i += 8 {
		x := load8(name, i)
		if tdClass(x)&^x&highs != highs {
			return false
		}
	}
	if i == len(name) {
		return true
	}
	if len(name) >= 8 {
		// Check the last eight bytes again, overlapping the last full word.
		x := load8(name, len(name)-8)
		return tdClass(x)&^x&highs == highs
	}
	for ; i < len(name); i++ {
		if charClass[name[i]]&classTrustDomain == 0 {
			return false
		}
	}
	return true
}

// trustDomainEnd returns the length of the trust domain name at the start of
// rest: up to the first '/' or the end. It fails on a byte that is not a trust
// domain character before that point (ID rules 3-7 and 16).
func trustDomainEnd(rest string) (int, error) {
	i := 0
	for ; i+8 <= len(rest); i += 8 {
		x := load8(rest, i)
		ascii := ^x & highs
		ok := tdClass(x) & ascii
		if slash := equal(x, '/') & ascii; slash != 0 {
			// Only the bytes before the first slash belong to the name.
			first := bits.TrailingZeros64(slash)
			before := (uint64(1)<<first - 1) & highs
			if ok&before != before {
				return 0, errBadTrustDomainChar
			}
			return i + first/8, nil
		}
		if ok != highs {
			return 0, errBadTrustDomainChar
		}
	}
	for ; i < len(rest); i++ {
		c := rest[i]
		if c == '/' {
			break
		}
		if charClass[c]&classTrustDomain == 0 {
			return 0, errBadTrustDomainChar
		}
	}
	return i, nil
}

// validateAbsPath checks a non-empty path that starts with '/' (ID rules
// 10-14). It is the hot loop of [FromString]: a fast check answers whether the
// path is valid, and only an invalid path is scanned again, a byte at a time,
// to report its first error exactly as go-spiffe words it.
func validateAbsPath(path string) error {
	if len(path) >= 8 && pathValid(path) {
		return nil
	}
	return validateShortPath(path)
}

// pathValid reports whether a path of at least eight bytes that starts with
// '/' is valid: it checks the characters of eight bytes at a time and looks at
// segments only where a word holds a slash.
func pathValid(path string) bool {
	n := len(path)
	start := 0 // index of the '/' that opens the current segment
	for i := 0; i < n; i += 8 {
		base := min(i, n-8) // the last word overlaps the one before it
		x := load8(path, base)
		// ID rule 10: letters of either case (folding case maps exactly A-Z
		// onto a-z), digits, '-', '.', '_', and the '/' separator; '-' '.'
		// '/' and the digits are one range. Bytes >= 0x80 are never valid.
		if (within(x|ones*0x20, 'a', 'z')|within(x, '-', '9')|equal(x, '_'))&^x&highs != highs {
			return false
		}
		skip := uint(i-base) * 8
		slash := equal(x, '/') & highs >> skip << skip
		if i == 0 {
			slash &^= 0x80 // the leading slash opens the first segment
		}
		for ; slash != 0; slash &= slash - 1 {
			at := base + bits.TrailingZeros64(slash)/8
			// ID rules 12, 13: only segments of up to two bytes can be bad.
			if at-start <= 3 && checkSegment(path[start+1:at]) != nil {
				return false
			}
			start = at
		}
	}
	return checkLastSegment(path[start+1:]) == nil
}

// validateShortPath is validateAbsPath for paths under eight bytes.
func validateShortPath(path string) error {
	start := 0
	for i := 1; i < len(path); i++ {
		c := path[i]
		if c == '/' {
			if err := checkSegment(path[start+1 : i]); err != nil {
				return err
			}
			start = i
			continue
		}
		if charClass[c]&classPath == 0 {
			return errBadPathSegmentChar
		}
	}
	return checkLastSegment(path[start+1:])
}

func checkLastSegment(last string) error {
	if last == "" {
		return errTrailingSlash // ID rule 14
	}
	return checkSegment(last)
}
