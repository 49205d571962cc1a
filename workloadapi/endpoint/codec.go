package endpoint

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// rawMessage is a response already encoded as protobuf. Streams send the
// bytes cached in a Snapshot as they are, so that one rotation reaching
// thousands of streams is encoded once, not once per stream.
type rawMessage struct{ b []byte }

// codec is the proto codec, plus rawMessage passed through. grpc only reads
// the returned buffer, and mem.SliceBuffer does not recycle it, so the
// shared bytes are never written to.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2(proto.Name)} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (codec) Name() string { return proto.Name }
