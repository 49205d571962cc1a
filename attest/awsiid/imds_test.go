package awsiid

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/imdstest"
)

// The tests' metadata service and AWS stand-in: internal/testing/imdstest.
type signer = imdstest.Signer

func startIMDS(t testing.TB, data map[string]string) *imdstest.Server { return imdstest.Start(t, data) }

func newSigner(t testing.TB, i int, serial int64) *signer { return imdstest.NewSigner(t, i, serial) }

func instanceData(t testing.TB, s *signer, doc string) map[string]string { return s.Data(t, doc) }

var document = imdstest.Document

const (
	testAccount  = "123456789012"
	otherAccount = "210987654321"
	testRegion   = "us-east-1"
	testInstance = "i-0123456789abcdef0"
)

// The paths the client asks for are the service's.
func TestPathsAreTheService(t *testing.T) {
	require.Equal(t, imdstest.DocumentPath, documentPath)
	require.Equal(t, imdstest.SignaturePath, signaturePath)
	require.Equal(t, imdstest.RSA2048Path, rsa2048Path)
}
