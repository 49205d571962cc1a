//go:build windows

package workloadapi

import (
	"errors"
	"net/url"

	"github.com/Microsoft/go-winio"
	"google.golang.org/grpc"
)

// dialTarget returns the gRPC target of the configured address or named
// pipe, and, for a pipe, the dialer that opens it: gRPC dials the pipe's
// path as given ("passthrough"), through go-winio.
func dialTarget(cfg *clientConfig) (string, []grpc.DialOption, error) {
	var path string
	switch {
	case cfg.namedPipeName != "" && cfg.address != "":
		return "", nil, errors.New("workloadapi: only one of WithAddr or WithNamedPipeName options can be used, not both")
	case cfg.namedPipeName != "":
		p, err := namedPipePath(cfg.namedPipeName)
		if err != nil {
			return "", nil, err
		}
		path = p
	default:
		addr, err := cfg.addressOrDefault()
		if err != nil {
			return "", nil, err
		}
		target, err := TargetFromAddress(addr)
		if err != nil {
			return "", nil, err
		}
		if u, _ := url.Parse(addr); u == nil || u.Scheme != "npipe" {
			return target, nil, nil
		}
		path = target
	}
	return "passthrough:///" + path, []grpc.DialOption{grpc.WithContextDialer(winio.DialPipeContext)}, nil
}
