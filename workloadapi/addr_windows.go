//go:build windows

package workloadapi

import (
	"errors"
	"net/url"
)

// ErrInvalidEndpointScheme is returned by TargetFromAddress, ValidateAddress
// and New when an address has a scheme other than "npipe" or "tcp" (or
// none).
var ErrInvalidEndpointScheme = errors.New("workloadapi: workload endpoint socket URI must have a \"tcp\" or \"npipe\" scheme")

// targetOS parses the addresses of the system's own transport: named
// pipes.
func targetOS(addr string, u *url.URL) (string, error) {
	if u.Scheme == "npipe" {
		return namedPipeTarget(addr, u)
	}
	return "", ErrInvalidEndpointScheme
}
