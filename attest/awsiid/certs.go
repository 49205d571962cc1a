package awsiid

import (
	"crypto/rsa"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// The partitions of AWS, by the prefix of their regions' names.
const (
	PartitionAWS      = "aws"        // every region not below
	PartitionChina    = "aws-cn"     // cn-*
	PartitionGovCloud = "aws-us-gov" // us-gov-*
)

// PartitionOf returns the partition a region belongs to: "aws-cn" for
// cn-*, "aws-us-gov" for us-gov-*, "aws" for any other name.
func PartitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return PartitionChina
	case strings.HasPrefix(region, "us-gov-"):
		return PartitionGovCloud
	}
	return PartitionAWS
}

//go:embed awscerts/rsa2048/*.pem
var awsRSA2048 embed.FS

var (
	builtinOnce sync.Once
	builtin     map[string][]*x509.Certificate
	builtinErr  error
)

// AWSCertificates returns AWS's published RSA-2048 certificates that
// verify the PKCS #7 signature of instance identity documents
// (/rsa2048), by region: 31 regions of the three partitions, as AWS's EC2
// user guide lists them. The map is new at each call; the certificates
// are shared and must not be changed.
func AWSCertificates() map[string][]*x509.Certificate {
	builtinOnce.Do(func() { builtin, builtinErr = loadBuiltin() })
	if builtinErr != nil {
		// The files are part of the package and checked by its tests.
		panic("awsiid: built-in certificates: " + builtinErr.Error())
	}
	out := make(map[string][]*x509.Certificate, len(builtin))
	for r, certs := range builtin {
		out[r] = slices.Clip(certs)
	}
	return out
}

func loadBuiltin() (map[string][]*x509.Certificate, error) {
	files, err := fs.Glob(awsRSA2048, "awscerts/rsa2048/*.pem")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]*x509.Certificate, len(files))
	for _, f := range files {
		b, err := awsRSA2048.ReadFile(f)
		if err != nil {
			return nil, err
		}
		certs, err := pemutil.ParseCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[strings.TrimSuffix(path.Base(f), ".pem")] = certs
	}
	return out, nil
}

// maxCertFile bounds a certificate file LoadCertificates reads.
const maxCertFile = 1 << 20

// LoadCertificates reads the certificates of each region from PEM files:
// files maps a region to the path of a file of one or more CERTIFICATE
// blocks (at most 1 MiB). Use it for the regions AWSCertificates lacks,
// for a certificate AWS publishes after this release, or for the
// certificates of the RSA-SHA256 signature.
func LoadCertificates(files map[string]string) (map[string][]*x509.Certificate, error) {
	out := make(map[string][]*x509.Certificate, len(files))
	for _, region := range slices.Sorted(maps.Keys(files)) {
		if !regionRE.MatchString(region) {
			return nil, fmt.Errorf("awsiid: %q is not a region name", region)
		}
		b, err := atomicfile.Read(files[region], maxCertFile)
		if err != nil {
			return nil, fmt.Errorf("awsiid: certificates of region %s: %w", region, err)
		}
		certs, err := pemutil.ParseCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("awsiid: certificates of region %s, %s: %w", region, files[region], err)
		}
		out[region] = certs
	}
	return out, nil
}

// checkCertificates checks that m maps region names to RSA certificates
// and returns its copy restricted to the regions that keep says to keep.
func checkCertificates(what string, m map[string][]*x509.Certificate, keep func(region string) bool) (map[string][]*x509.Certificate, error) {
	out := map[string][]*x509.Certificate{}
	for _, region := range slices.Sorted(maps.Keys(m)) {
		certs := m[region]
		if !regionRE.MatchString(region) {
			return nil, fmt.Errorf("%s: %q is not a region name", what, region)
		}
		if len(certs) == 0 {
			return nil, fmt.Errorf("%s: region %s has no certificate", what, region)
		}
		for i, c := range certs {
			if c == nil {
				return nil, fmt.Errorf("%s: certificate %d of region %s is nil", what, i, region)
			}
			if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
				return nil, fmt.Errorf("%s: certificate %d of region %s has a %T key, not RSA", what, i, region, c.PublicKey)
			}
		}
		if keep(region) {
			out[region] = slices.Clone(certs)
		}
	}
	return out, nil
}

var errNoCertificate = errors.New("no certificate")
