package spiffeid

// Character classes, as a table indexed by byte so that the hot loops of the
// parsers do one load and one test per byte.
const (
	classTrustDomain = 1 << iota // ID rule 4: a-z 0-9 . - _
	classPath                    // ID rule 10: a-z A-Z 0-9 . - _
)

var charClass = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = classTrustDomain | classPath
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = classTrustDomain | classPath
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = classPath
	}
	for _, c := range ".-_" {
		t[c] = classTrustDomain | classPath
	}
	return t
}()

// maxTrustDomainLen is the longest trust domain name the standard allows
// (ID rule 8).
const maxTrustDomainLen = 255

// validateTrustDomainName checks a bare trust domain name (ID rules 2-8).
func validateTrustDomainName(name string) error {
	if name == "" {
		return errMissingTrustDomain
	}
	if len(name) > maxTrustDomainLen {
		return errTrustDomainTooLong
	}
	if !validateTrustDomainChars(name) {
		return errBadTrustDomainChar
	}
	return nil
}
