package spiffeid

import "errors"

// The messages keep go-spiffe's wording after the package prefix so that logs
// stay recognisable to users of both libraries. They are sentinels so that the
// parsers never allocate, even on the error path.
var (
	errBadTrustDomainChar = errors.New("spiffeid: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores")
	errBadPathSegmentChar = errors.New("spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores")
	errDotSegment         = errors.New("spiffeid: path cannot contain dot segments")
	errNoLeadingSlash     = errors.New("spiffeid: path must have a leading slash")
	errEmpty              = errors.New("spiffeid: cannot be empty")
	errEmptySegment       = errors.New("spiffeid: path cannot contain empty segments")
	errMissingTrustDomain = errors.New("spiffeid: trust domain is missing")
	errTrustDomainTooLong = errors.New("spiffeid: trust domain name cannot be longer than 255 bytes")
	errPrefixMissingPath  = errors.New("spiffeid: prefix must have a path")
	errTrailingSlash      = errors.New("spiffeid: path cannot have a trailing slash")
	errWrongScheme        = errors.New("spiffeid: scheme is missing or invalid")
	errZeroTrustDomain    = errors.New("spiffeid: trust domain is empty")
	errNilURI             = errors.New("spiffeid: URI is nil")
)
