package spiffeid

import "net/url"

// The Require functions panic on error. Use them only with inputs fixed when
// the program is written, never with input read at run time.

// RequireFromString is like [FromString] but panics on error.
func RequireFromString(s string) ID { return must(FromString(s)) }

// RequireFromStringf is like [FromStringf] but panics on error.
func RequireFromStringf(format string, args ...any) ID {
	return must(FromStringf(format, args...))
}

// RequireFromURI is like [FromURI] but panics on error.
func RequireFromURI(uri *url.URL) ID { return must(FromURI(uri)) }

// RequireFromPath is like [FromPath] but panics on error.
func RequireFromPath(td TrustDomain, path string) ID { return must(FromPath(td, path)) }

// RequireFromPathf is like [FromPathf] but panics on error.
func RequireFromPathf(td TrustDomain, format string, args ...any) ID {
	return must(FromPathf(td, format, args...))
}

// RequireFromSegments is like [FromSegments] but panics on error.
func RequireFromSegments(td TrustDomain, segments ...string) ID {
	return must(FromSegments(td, segments...))
}

// RequireTrustDomainFromString is like [TrustDomainFromString] but panics on
// error.
func RequireTrustDomainFromString(s string) TrustDomain { return must(TrustDomainFromString(s)) }

// RequireTrustDomainFromURI is like [TrustDomainFromURI] but panics on error.
func RequireTrustDomainFromURI(uri *url.URL) TrustDomain { return must(TrustDomainFromURI(uri)) }

// RequireFormatPath is like [FormatPath] but panics on error.
func RequireFormatPath(format string, args ...any) string {
	return must(FormatPath(format, args...))
}

// RequireJoinPathSegments is like [JoinPathSegments] but panics on error.
func RequireJoinPathSegments(segments ...string) string {
	return must(JoinPathSegments(segments...))
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
