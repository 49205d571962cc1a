package endpoint

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

type nopObserver struct{}

func (nopObserver) Answered(string, codes.Code, time.Duration) {}
func (nopObserver) StreamOpened(string)                        {}
func (nopObserver) StreamClosed(string, codes.Code)            {}

// nopStream is a server stream whose sends succeed and go nowhere.
type nopStream struct{ grpc.ServerStream }

func (nopStream) SendMsg(any) error { return nil }

// BenchmarkObserverInterceptors measures what Config.Observer adds to a
// call, without the transport around it: the interceptors with an
// observer that does nothing, against the handler called directly (what
// a server without an observer does).
func BenchmarkObserverInterceptors(b *testing.B) {
	unaryInfo := &grpc.UnaryServerInfo{FullMethod: wapiPrefix + "FetchJWTSVID"}
	unary := func(context.Context, any) (any, error) { return nil, nil }
	streamInfo := &grpc.StreamServerInfo{FullMethod: wapiPrefix + "FetchX509SVID"}
	stream := func(_ any, ss grpc.ServerStream) error { return ss.SendMsg(nil) }
	ctx := context.Background()

	b.Run("unary/observer=none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			unary(ctx, nil)
		}
	})
	b.Run("unary/observer=nop", func(b *testing.B) {
		b.ReportAllocs()
		i := unaryObserver(nopObserver{})
		for b.Loop() {
			i(ctx, nil, unaryInfo, unary)
		}
	})
	b.Run("stream/observer=none", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stream(nil, nopStream{})
		}
	})
	b.Run("stream/observer=nop", func(b *testing.B) {
		b.ReportAllocs()
		i := streamObserver(nopObserver{})
		for b.Loop() {
			i(nil, nopStream{}, streamInfo, stream)
		}
	})
}
