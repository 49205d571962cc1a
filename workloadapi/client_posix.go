//go:build !windows

package workloadapi

import "google.golang.org/grpc"

// dialTarget returns the gRPC target of the configured address; unix
// sockets and TCP need no dialer of their own.
func dialTarget(cfg *clientConfig) (string, []grpc.DialOption, error) {
	addr, err := cfg.addressOrDefault()
	if err != nil {
		return "", nil, err
	}
	target, err := TargetFromAddress(addr)
	return target, nil, err
}
