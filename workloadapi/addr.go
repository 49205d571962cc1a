package workloadapi

import (
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// SocketEnv is the environment variable holding the default Workload API
// address (WE rule 8).
const SocketEnv = "SPIFFE_ENDPOINT_SOCKET"

// GetDefaultAddress returns the value of the SPIFFE_ENDPOINT_SOCKET
// environment variable and whether it is set. The value is not validated.
func GetDefaultAddress() (string, bool) {
	return os.LookupEnv(SocketEnv)
}

// ValidateAddress validates that the provided address can be parsed to a gRPC
// target string for dialing a Workload API endpoint exposed as a Unix Domain
// Socket or TCP socket (a named pipe or TCP socket on Windows). See
// TargetFromAddress for the rules.
func ValidateAddress(addr string) error {
	_, err := TargetFromAddress(addr)
	return err
}

// TargetFromAddress parses the endpoint address and returns a gRPC target
// string for dialing.
//
// The address is an RFC 3986 URI (WE rule 8), with a case-insensitive scheme:
//
//   - "unix": no authority, an absolute path, and nothing else:
//     "unix:///run/spire/agent.sock" or "unix:/run/spire/agent.sock". The
//     target is "unix://" followed by the path.
//   - "tcp": an IP address (not a host name) and a port, and nothing else:
//     "tcp://127.0.0.1:8000", "tcp://[::1]:8000". The target is "host:port".
//   - "npipe", on Windows only (and "unix" on every other system only, as
//     go-spiffe has them): an opaque pipe name, "npipe:agent" or
//     "npipe:spire/agent", and nothing else. The target is the pipe's path,
//     "\\.\pipe\agent" ("\\.\pipe\spire\agent"). Stricter than
//     go-spiffe: a name with an empty, "." or ".." element (which would
//     leave the pipe namespace once Windows cleans the path) or longer than
//     256 characters is rejected.
//
// Stricter than go-spiffe, as WE rule 8 requires: an authority in a unix
// address ("unix://host/run/sock", which go-spiffe dials as if the host were
// a path component) is rejected, as is a tcp port of 0 or above 65535. Empty
// queries and fragments ("?", "#") are rejected like non-empty ones. Any
// other scheme gives ErrInvalidEndpointScheme.
func TargetFromAddress(addr string) (string, error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", errors.New("workloadapi: workload endpoint socket is not a valid URI: " + err.Error())
	}
	if u.Scheme == "tcp" { // url.Parse lowercases the scheme
		return tcpTarget(addr, u)
	}
	return targetOS(addr, u)
}

func unixTarget(addr string, u *url.URL) (string, error) {
	switch {
	case u.Opaque != "":
		return "", errors.New("workloadapi: workload endpoint unix socket URI must not be opaque")
	case u.User != nil:
		return "", errors.New("workloadapi: workload endpoint unix socket URI must not include user info")
	case u.Host != "":
		// WE rule 8: scheme and path only. go-spiffe accepts an authority.
		return "", errors.New("workloadapi: workload endpoint unix socket URI must not include an authority")
	case u.Path == "":
		return "", errors.New("workloadapi: workload endpoint unix socket URI must include a path")
	case u.RawQuery != "" || u.ForceQuery:
		return "", errors.New("workloadapi: workload endpoint unix socket URI must not include query values")
	case u.Fragment != "" || strings.Contains(addr, "#"):
		return "", errors.New("workloadapi: workload endpoint unix socket URI must not include a fragment")
	}
	return "unix://" + u.EscapedPath(), nil
}

func tcpTarget(addr string, u *url.URL) (string, error) {
	switch {
	case u.Opaque != "":
		return "", errors.New("workloadapi: workload endpoint tcp socket URI must not be opaque")
	case u.User != nil:
		return "", errors.New("workloadapi: workload endpoint tcp socket URI must not include user info")
	case u.Host == "":
		return "", errors.New("workloadapi: workload endpoint tcp socket URI must include a host")
	case u.Path != "":
		return "", errors.New("workloadapi: workload endpoint tcp socket URI must not include a path")
	case u.RawQuery != "" || u.ForceQuery:
		return "", errors.New("workloadapi: workload endpoint tcp socket URI must not include query values")
	case u.Fragment != "" || strings.Contains(addr, "#"):
		return "", errors.New("workloadapi: workload endpoint tcp socket URI must not include a fragment")
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return "", errors.New("workloadapi: workload endpoint tcp socket URI host component must be an IP:port")
	}
	port := u.Port()
	if port == "" {
		return "", errors.New("workloadapi: workload endpoint tcp socket URI host component must include a port")
	}
	// Stricter than go-spiffe, which accepts 0 and any number of digits.
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", errors.New("workloadapi: workload endpoint tcp socket URI port must be between 1 and 65535")
	}
	return net.JoinHostPort(ip.String(), port), nil
}
