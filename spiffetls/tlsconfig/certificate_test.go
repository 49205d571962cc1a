package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGetCertificate(t *testing.T) {
	td := testca.New(t, exampleOrg)
	svid := td.NewSVID(t, "/w")
	errSource := errors.New("source down")

	tests := []struct {
		name    string
		source  x509svid.Source
		wantErr string
	}{
		{name: "valid", source: svid},
		{name: "nil source", source: nil, wantErr: "tlsconfig: X509-SVID source is required"},
		{name: "source fails", source: failingSource{err: errSource}, wantErr: "source down"},
		{name: "nil SVID", source: testca.NewX509Source(nil), wantErr: "tlsconfig: X509-SVID source returned no SVID"},
		{name: "no certificates", source: &x509svid.SVID{PrivateKey: svid.PrivateKey}, wantErr: "tlsconfig: X509-SVID has no certificates"},
		{name: "nil leaf", source: &x509svid.SVID{Certificates: []*x509.Certificate{nil}, PrivateKey: svid.PrivateKey}, wantErr: "tlsconfig: X509-SVID has no certificates"},
		{name: "nil intermediate", source: &x509svid.SVID{Certificates: []*x509.Certificate{svid.Certificates[0], nil}, PrivateKey: svid.PrivateKey}, wantErr: "tlsconfig: X509-SVID has a nil certificate"},
		{name: "no key", source: &x509svid.SVID{Certificates: svid.Certificates}, wantErr: "tlsconfig: X509-SVID has no private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type traced struct {
				info  tlsconfig.GotCertificateInfo
				value any
			}
			var gets int
			var got []traced
			trace := tlsconfig.WithTrace(tlsconfig.Trace{
				GetCertificate: func(tlsconfig.GetCertificateInfo) any {
					gets++
					return gets
				},
				GotCertificate: func(info tlsconfig.GotCertificateInfo, v any) {
					got = append(got, traced{info, v})
				},
			})
			serverCert, serverErr := tlsconfig.GetCertificate(tt.source, nil, trace)(&tls.ClientHelloInfo{})
			clientCert, clientErr := tlsconfig.GetClientCertificate(tt.source, trace)(&tls.CertificateRequestInfo{})
			require.Equal(t, 2, gets)
			require.Len(t, got, 2)
			assert.Equal(t, 1, got[0].value)
			assert.Equal(t, 2, got[1].value)
			if tt.wantErr != "" {
				for _, err := range []error{serverErr, clientErr, got[0].info.Err, got[1].info.Err} {
					require.Error(t, err)
					assert.Contains(t, err.Error(), tt.wantErr)
				}
				assert.Nil(t, serverCert)
				assert.Nil(t, clientCert)
				return
			}
			require.NoError(t, serverErr)
			require.NoError(t, clientErr)
			for _, c := range []*tls.Certificate{serverCert, clientCert, got[0].info.Cert, got[1].info.Cert} {
				require.NotNil(t, c)
				assert.Equal(t, rawChain(svid), c.Certificate)
				assert.Same(t, svid.Certificates[0], c.Leaf)
				assert.Equal(t, svid.PrivateKey, c.PrivateKey)
			}
		})
	}
}

func TestTraceWithoutGetCertificate(t *testing.T) {
	td := testca.New(t, exampleOrg)
	var value any = "unset"
	get := tlsconfig.GetCertificate(td.NewSVID(t, "/w"), tlsconfig.WithTrace(tlsconfig.Trace{
		GotCertificate: func(_ tlsconfig.GotCertificateInfo, v any) { value = v },
	}))
	_, err := get(nil)
	require.NoError(t, err)
	assert.Nil(t, value)
}
