// Package workloadpb holds the wire types of the SPIFFE Workload API: the
// messages generated from spiffekit_workload.proto and a hand-written gRPC service
// description whose service name is the standard's "SpiffeWorkloadAPI".
//
// The generator is pinned in tools/protogen/go.mod; regenerate with
// `go generate ./internal/workloadpb`.
package workloadpb

//go:generate go -C ../../tools/protogen run . -I ../../internal/workloadpb -out ../../internal/workloadpb spiffekit_workload.proto
