package link

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestWorkloadAPIBothLinked links spiffekit's Workload API client and
// server beside go-spiffe's client and generated proto package, and shows
// that the process started (no registration conflict panicked at init) and
// works: each client fetches an X509-SVID from the same server.
//
// The conflict policy must not have been relaxed for this to mean anything
// (wire contract, section B: linking beside go-spiffe).
func TestWorkloadAPIBothLinked(t *testing.T) {
	require.Empty(t, os.Getenv("GOLANG_PROTOBUF_REGISTRATION_CONFLICT"),
		"run without GOLANG_PROTOBUF_REGISTRATION_CONFLICT: it hides the conflict this test looks for")

	// Both libraries registered a file declaring the X509SVIDRequest
	// message: go-spiffe's without a proto package, ours in its own.
	var files []string
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if fd.Messages().ByName("X509SVIDRequest") != nil {
			files = append(files, string(fd.Path())+" ("+string(fd.Package())+")")
		}
		return true
	})
	assert.Len(t, files, 2, "files declaring X509SVIDRequest: %v", files)
	_, err := protoregistry.GlobalTypes.FindMessageByName("X509SVIDRequest")
	require.NoError(t, err, "go-spiffe's unqualified name stays registered")
	_ = workload.File_workload_proto

	f := workloadtest.New(t)
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, ""))))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	ours, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(srv.Addr))
	require.NoError(t, err)
	theirs, err := gsworkloadapi.FetchX509SVID(ctx, gsworkloadapi.WithAddr(srv.Addr))
	require.NoError(t, err)
	assert.Equal(t, workloadtest.WebID.String(), ours.ID.String())
	assert.Equal(t, ours.ID.String(), theirs.ID.String())
	assert.True(t, ours.Certificates[0].Equal(theirs.Certificates[0]))
}
