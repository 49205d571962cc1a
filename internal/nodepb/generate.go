// Package nodepb holds the wire types of the node protocol between an
// issuing server and its node agents: the messages generated from
// spiffekit_node.proto and a hand-written gRPC service description.
//
// The generator is pinned in tools/protogen/go.mod; regenerate with
// `go generate ./internal/nodepb`.
package nodepb

//go:generate go -C ../../tools/protogen run . -I ../../internal/nodepb -out ../../internal/nodepb spiffekit_node.proto
