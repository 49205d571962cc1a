package spiffeid

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// refPathError is a plain reading of ID rules 9-14, used as the oracle for the
// word-at-a-time checks.
func refPathError(path string) error {
	if path == "" {
		return nil
	}
	if path[0] != '/' {
		return errNoLeadingSlash
	}
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
				return errBadPathSegmentChar
			}
		}
		switch {
		case seg == "" && i == len(segs)-1:
			return errTrailingSlash
		case seg == "":
			return errEmptySegment
		case seg == "." || seg == "..":
			return errDotSegment
		}
	}
	return nil
}

// refTrustDomainEnd is a plain reading of ID rule 4 for the name before the
// first slash.
func refTrustDomainEnd(rest string) (int, error) {
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '/' {
			return i, nil
		}
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return 0, errBadTrustDomainChar
		}
	}
	return len(rest), nil
}

// alphabet holds every byte class the checks distinguish, with the bytes next
// to each range boundary, where an off-by-one would hide.
const alphabet = "/./..//aAzZ09-_`{@[^:,+~ \x7f\x80\xff"

func randomPath(r *rand.Rand) string {
	n := r.IntN(40)
	var b strings.Builder
	b.WriteByte('/')
	for range n {
		if r.IntN(3) == 0 {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		} else {
			b.WriteByte("abcXYZ019-_."[r.IntN(12)])
		}
	}
	return b.String()
}

func TestWordChecksAgreeWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		p := randomPath(r)
		// The first error found must be the reference's too, so that
		// messages match go-spiffe's, which scans byte by byte.
		if got, want := validateAbsPath(p), refPathError(p); got != want {
			t.Fatalf("validateAbsPath(%q) = %v, want %v", p, got, want)
		}
		td := p[1:]
		gotEnd, gotErr := trustDomainEnd(td)
		wantEnd, wantErr := refTrustDomainEnd(td)
		if gotErr != wantErr || gotErr == nil && gotEnd != wantEnd {
			t.Fatalf("trustDomainEnd(%q) = %d, %v, want %d, %v", td, gotEnd, gotErr, wantEnd, wantErr)
		}
	}
}

func TestEveryByteInEveryWordPosition(t *testing.T) {
	// Every byte value at every offset of the first two words and the
	// overlapping last word, in paths of every length up to 24.
	for n := 2; n <= 24; n++ {
		for pos := 1; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte("/" + strings.Repeat("a", n-1))
				b[pos] = byte(c)
				p := string(b)
				if got, want := validateAbsPath(p), refPathError(p); got != want {
					t.Fatalf("validateAbsPath(%q) = %v, want %v", p, got, want)
				}
				td := p[1:]
				gotEnd, gotErr := trustDomainEnd(td)
				wantEnd, wantErr := refTrustDomainEnd(td)
				if gotErr != wantErr || gotErr == nil && gotEnd != wantEnd {
					t.Fatalf("trustDomainEnd(%q) = %d, %v, want %d, %v", td, gotEnd, gotErr, wantEnd, wantErr)
				}
			}
		}
	}
}

func FuzzPathChecks(f *testing.F) {
	for _, s := range []string{"/a", "/a/./b", "/abcdefgh/..", "/abcdefgh/", "//abcdefghij", "/ns/prod/sa/web-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if got, want := ValidatePath(p), refPathError(p); got != want {
			t.Fatalf("ValidatePath(%q) = %v, want %v", p, got, want)
		}
		gotEnd, gotErr := trustDomainEnd(p)
		wantEnd, wantErr := refTrustDomainEnd(p)
		if gotErr != wantErr || gotErr == nil && gotEnd != wantEnd {
			t.Fatalf("trustDomainEnd(%q) = %d, %v, want %d, %v", p, gotEnd, gotErr, wantEnd, wantErr)
		}
	})
}
