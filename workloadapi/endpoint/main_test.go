package endpoint_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
)

// childEnv names the role of this test binary when a test runs it as a
// Workload API caller in a process of its own (under another uid).
const childEnv = "ENDPOINT_TEST_CALLER"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runCaller(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// callerReport is what a caller process prints on its last line.
type callerReport struct {
	Codes     map[string]int  // calls per status code
	Latencies []time.Duration // of the calls, for "fetch"
}

// runCaller is the main of a caller process. Roles:
//
//	flood ADDR WORKERS: FetchJWTSVID as fast as WORKERS goroutines can, and
//	   print "ready" after the first 1,000 calls, until stdin closes
//	fetch ADDR CALLS: CALLS calls one after the other, alternately a
//	   FetchJWTSVID and a FetchX509SVID stream opened until its first
//	   response, each timed
//	dial PATH 0: connect to the unix socket at PATH and exit at once
//
// The first two print a callerReport as JSON.
func runCaller(role string, args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "want ADDR N")
		return 2
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	conn, err := grpc.NewClient(args[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	client := workloadpb.NewWorkloadAPIClient(conn)
	ctx := withHeader(context.Background())
	rep := callerReport{Codes: map[string]int{}}
	switch role {
	case "dial":
		if _, err := net.Dial("unix", args[0]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0 // the connection closes as the process exits
	case "flood":
		ctx, cancel := context.WithCancel(ctx)
		go func() { // the parent closes stdin to stop the flood
			_, _ = bufio.NewReader(os.Stdin).ReadByte()
			cancel()
		}()
		var mu sync.Mutex
		var wg sync.WaitGroup
		calls := 0
		for range n {
			wg.Go(func() {
				for ctx.Err() == nil {
					_, err := client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					rep.Codes[status.Code(err).String()]++
					if calls++; calls == 1000 {
						fmt.Println("ready")
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	case "fetch":
		for i := range n {
			start := time.Now()
			var err error
			if i%2 == 0 {
				_, err = client.FetchJWTSVID(ctx, &workloadpb.JWTSVIDRequest{Audience: []string{"db"}})
			} else {
				sctx, cancel := context.WithCancel(ctx)
				var s grpc.ServerStreamingClient[workloadpb.X509SVIDResponse]
				if s, err = client.FetchX509SVID(sctx, &workloadpb.X509SVIDRequest{}); err == nil {
					_, err = s.Recv()
				}
				cancel()
			}
			rep.Latencies = append(rep.Latencies, time.Since(start))
			rep.Codes[status.Code(err).String()]++
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		return 1
	}
	return 0
}

// quantile returns the q-quantile (0 < q <= 1) of d, by the nearest rank.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}
