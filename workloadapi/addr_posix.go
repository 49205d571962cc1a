//go:build !windows

package workloadapi

import (
	"errors"
	"net/url"
)

// ErrInvalidEndpointScheme is returned by TargetFromAddress, ValidateAddress
// and New when an address has a scheme other than "unix" or "tcp" (or none).
var ErrInvalidEndpointScheme = errors.New("workloadapi: workload endpoint socket URI must have a \"tcp\" or \"unix\" scheme")

// targetOS parses the addresses of the system's own transport: unix
// sockets.
func targetOS(addr string, u *url.URL) (string, error) {
	if u.Scheme == "unix" {
		return unixTarget(addr, u)
	}
	return "", ErrInvalidEndpointScheme
}
