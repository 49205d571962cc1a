package endpoint_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/spiffekit/spiffekit/internal/testing/calltest"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
)

// dialerEnv, set to "dial", makes the test binary a process that connects
// to the unix socket named by its first argument and exits at once
// (TestIdentifyExitedBeforeAccept).
const dialerEnv = "ENDPOINT_TEST_CALLER"

func TestMain(m *testing.M) {
	if os.Getenv(dialerEnv) == "dial" {
		if _, err := net.Dial("unix", os.Args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0) // the connection closes as the process exits
	}
	calltest.Main(dialCaller)
	os.Exit(m.Run())
}

// dialCaller gives the calls of a caller process (see calltest) of the
// endpoint at addr: the flood fetches JWT-SVIDs; a fetch run makes, in
// turn, a FetchJWTSVID call and a FetchX509SVID stream opened until its
// first response.
func dialCaller(_ context.Context, addr string) (calltest.Calls, func(), error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return calltest.Calls{}, nil, err
	}
	client := workloadpb.NewWorkloadAPIClient(conn)
	jwt := func(ctx context.Context) error {
		_, err := client.FetchJWTSVID(withHeader(ctx), &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
		return err
	}
	return calltest.Calls{
		Flood:      func(ctx context.Context, _, _ int) error { return jwt(ctx) },
		ReadyAfter: 1000,
		Fetch: func(ctx context.Context, i int) error {
			if i%2 == 0 {
				return jwt(ctx)
			}
			ctx, cancel := context.WithCancel(withHeader(ctx))
			defer cancel()
			s, err := client.FetchX509SVID(ctx, &workloadpb.X509SVIDRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		},
	}, func() { conn.Close() }, nil
}
