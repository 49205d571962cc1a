package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var x509Commands = []command{
	{name: "mint", summary: "Mints an X509-SVID for a SPIFFE ID, outside registration, with a new private key.", help: x509MintHelp, setup: x509Mint},
}

var jwtCommands = []command{
	{name: "mint", summary: "Mints a JWT-SVID for a SPIFFE ID and audiences, outside registration.", help: jwtMintHelp, setup: jwtMint},
}

const x509MintHelp = `The key is made here (ECDSA P-256) and never leaves this process: the
server signs a certificate request for it. The server logs every mint
(SPIFFE ID, DNS names, serial, expiry, caller), never the key. With -write,
svid.pem, key.pem (mode 0600) and bundle.pem go into the directory;
otherwise the three are printed as PEM (or, with -output json, as DER in
base64).`

const jwtMintHelp = `The server logs every mint (SPIFFE ID, audiences, expiry, caller), never
the token. With -write the token goes into the file (mode 0600) instead of
stdout.`

// mintFlags are the flags both mint commands take.
type mintFlags struct {
	id  spiffeid.ID
	ttl time.Duration
}

func (f *mintFlags) declare(cmd *cmdline.Command, kind string) {
	cmd.Var(cmdline.NewValue(&f.id, spiffeid.FromString), "spiffe-id", "SPIFFE `ID` of the "+kind+" (required)").Alias("spiffeID").Required()
	cmd.Var(cmdline.NewValue(&f.ttl, parseTTL), "ttl", "lifetime of the "+kind+", a `duration` or a number of seconds (default: the server's)")
}

// warnCapped says on stderr that the server gave a shorter lifetime than
// asked, as SPIRE's commands do.
func warnCapped(w io.Writer, kind string, ttl time.Duration, expires time.Time) {
	if ttl > 0 && time.Until(expires) < ttl-time.Minute {
		fmt.Fprintf(w, "%s lifetime was capped shorter than the -ttl asked for; it expires %s\n", kind, timeString(expires))
	}
}

// mintedX509JSON is the -output json form of x509 mint, with SPIRE's field
// names.
type mintedX509JSON struct {
	X509SVID   [][]byte  `json:"x509_svid"`   // DER, leaf first
	PrivateKey []byte    `json:"private_key"` // PKCS#8 DER
	RootCAs    [][]byte  `json:"root_cas"`    // DER
	ExpiresAt  time.Time `json:"expires_at"`
}

// writtenX509JSON is the -output json form of x509 mint -write.
type writtenX509JSON struct {
	X509SVIDPath   string    `json:"x509_svid_path"`
	PrivateKeyPath string    `json:"private_key_path"`
	RootCAsPath    string    `json:"root_cas_path"`
	ExpiresAt      time.Time `json:"expires_at"`
}

func derList(certs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

func x509Mint(cmd *cmdline.Command) action {
	var f mintFlags
	var dns []string
	var write string
	f.declare(cmd, "X509-SVID")
	cmd.Var(cmdline.NewList(&dns, cmdline.Text, ","), "dns", "DNS `name` to include as a SAN (repeat it, or separate with commas, for several)")
	cmd.String(&write, "write", "", "write svid.pem, key.pem and bundle.pem into `directory` instead of printing them")
	return func(ctx context.Context, c *call) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("generating a key: %w", err)
		}
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{f.id.URL()}, DNSNames: dns}, key)
		if err != nil {
			return fmt.Errorf("making the certificate request: %w", err)
		}
		minted, err := c.client.MintX509SVID(ctx, csr, f.ttl)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		expires := minted.Chain[0].NotAfter.UTC()
		warnCapped(c.err, "X509-SVID", f.ttl, expires)
		svidPEM, bundlePEM := pemutil.EncodeCertificates(minted.Chain), pemutil.EncodeCertificates(minted.RootCAs)
		if write == "" {
			return c.print(mintedX509JSON{X509SVID: derList(minted.Chain), PrivateKey: keyDER, RootCAs: derList(minted.RootCAs), ExpiresAt: expires},
				func(w io.Writer) {
					fmt.Fprintf(w, "X509-SVID:\n%s\nPrivate key:\n%s\nRoot CAs:\n%s", svidPEM, keyPEM, bundlePEM)
				})
		}
		if err := os.MkdirAll(write, 0o700); err != nil {
			return fmt.Errorf("-write: %w", err)
		}
		paths := writtenX509JSON{X509SVIDPath: filepath.Join(write, "svid.pem"), PrivateKeyPath: filepath.Join(write, "key.pem"),
			RootCAsPath: filepath.Join(write, "bundle.pem"), ExpiresAt: expires}
		// The key first, so that a failure never leaves a certificate
		// without it.
		for _, file := range []struct {
			path string
			data []byte
			perm os.FileMode
		}{{paths.PrivateKeyPath, keyPEM, 0o600}, {paths.X509SVIDPath, svidPEM, 0o644}, {paths.RootCAsPath, bundlePEM, 0o644}} {
			if err := atomicfile.Write(file.path, file.data, file.perm); err != nil {
				return fmt.Errorf("-write: %w", err)
			}
		}
		return c.print(paths, func(w io.Writer) {
			fmt.Fprintf(w, "X509-SVID written to %s\nPrivate key written to %s\nRoot CAs written to %s\n",
				paths.X509SVIDPath, paths.PrivateKeyPath, paths.RootCAsPath)
		})
	}
}

// mintedJWTJSON is the -output json form of jwt mint.
type mintedJWTJSON struct {
	Token     string    `json:"token,omitempty"`
	Path      string    `json:"path,omitempty"` // with -write
	ExpiresAt time.Time `json:"expires_at"`
}

func jwtMint(cmd *cmdline.Command) action {
	var f mintFlags
	var audiences []string
	var write string
	f.declare(cmd, "JWT-SVID")
	cmd.Var(cmdline.NewList(&audiences, cmdline.Text, ","), "audience", "`audience` of the token (required; repeat it, or separate with commas, for several)").Required()
	cmd.String(&write, "write", "", "write the token into `file` (mode 0600) instead of printing it")
	return func(ctx context.Context, c *call) error {
		minted, err := c.client.MintJWTSVID(ctx, f.id, audiences, f.ttl)
		if err != nil {
			return err
		}
		warnCapped(c.err, "JWT-SVID", f.ttl, minted.ExpiresAt)
		if write == "" {
			return c.print(mintedJWTJSON{Token: minted.Token, ExpiresAt: minted.ExpiresAt.UTC()}, func(w io.Writer) { fmt.Fprintln(w, minted.Token) })
		}
		if err := atomicfile.Write(write, []byte(minted.Token+"\n"), 0o600); err != nil {
			return fmt.Errorf("-write: %w", err)
		}
		return c.print(mintedJWTJSON{Path: write, ExpiresAt: minted.ExpiresAt.UTC()}, func(w io.Writer) { fmt.Fprintf(w, "JWT-SVID written to %s\n", write) })
	}
}
