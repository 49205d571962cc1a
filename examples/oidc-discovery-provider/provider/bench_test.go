package provider_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
)

// BenchmarkJWKS measures GET /keys with a JWKS of three P-256 keys (one
// active, one prepared, one old, as during a rotation): the handler alone,
// and over loopback HTTP and HTTPS with keep-alive connections from
// parallel clients (GOMAXPROCS each), as a validator fleet fetches it.
// req/s is requests per second of wall time.
func BenchmarkJWKS(b *testing.B) {
	keys := provider.NewKeySet(false)
	require.NoError(b, keys.Set(bundleOf(map[string]*ecdsa.PrivateKey{"k1": newKey(b), "k2": newKey(b), "k3": newKey(b)})))
	h := provider.NewHandler(handlerConfig(b, ""), keys, nil)

	b.Run("handler", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			r := httptest.NewRequest("GET", provider.KeysPath, nil)
			r.Host = "localhost"
			for pb.Next() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
	for _, tlsOn := range []bool{false, true} {
		name := "http"
		if tlsOn {
			name = "https"
		}
		b.Run(name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			srv := &http.Server{Handler: h}
			client := &http.Transport{MaxIdleConnsPerHost: 64}
			scheme := "http"
			if tlsOn {
				certPath, keyPath, _ := servingCert(b, b.TempDir())
				cert, err := tls.LoadX509KeyPair(certPath, keyPath)
				require.NoError(b, err)
				lis = tls.NewListener(lis, &tls.Config{Certificates: []tls.Certificate{cert}})
				client.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // a benchmark of serving, not of verifying
				client.ForceAttemptHTTP2 = false
				scheme = "https"
			}
			go srv.Serve(lis)
			defer srv.Close()
			defer client.CloseIdleConnections()
			c := &http.Client{Transport: client}
			url := fmt.Sprintf("%s://%s%s", scheme, lis.Addr(), provider.KeysPath)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest("GET", url, nil)
					req.Host = "localhost"
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		})
	}
}
