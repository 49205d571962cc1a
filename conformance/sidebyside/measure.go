package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// latency is the percentiles of a set of round trips.
type latency struct {
	p50, p99 time.Duration
	n        int
}

func percentiles(d []time.Duration) latency {
	if len(d) == 0 {
		return latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration {
		i := int(p/100*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return latency{p50: at(50), p99: at(99), n: len(s)}
}

// loadSampler reads the 1-minute load average every 5 s.
type loadSampler struct {
	mu      sync.Mutex
	samples []float64
	cancel  context.CancelFunc
	done    chan struct{}
}

func startLoadSampler(ctx context.Context) *loadSampler {
	ctx, cancel := context.WithCancel(ctx)
	l := &loadSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			if v, err := loadAvg(); err == nil {
				l.mu.Lock()
				l.samples = append(l.samples, v)
				l.mu.Unlock()
			}
			if !sleep(ctx, 5*time.Second) {
				return
			}
		}
	}()
	return l
}

// loadStats summarises the samples.
type loadStats struct{ min, median, max float64 }

func (l *loadSampler) stop() loadStats {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return loadStats{}
	}
	s := slices.Clone(l.samples)
	slices.Sort(s)
	return loadStats{min: s[0], median: s[len(s)/2], max: s[len(s)-1]}
}

func loadAvg() (float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("empty /proc/loadavg")
	}
	return strconv.ParseFloat(f[0], 64)
}

// signing measures X509-SVIDs signed per second through sys's node
// protocol, twice: one request of cfg.signBatch CSRs at a time (one
// agent's batch: whatever the server does in parallel, it does within the
// request) and one request in flight per core (several agents at once);
// and the raw limit of the machine in the same minutes: the same CSRs
// checked and certified with x509.CreateCertificate on every core, in this
// process.
func signing(ctx context.Context, cfg config, sys system) (oneAtATime, perCore, raw float64, err error) {
	tok, err := sys.token(ctx, "signer")
	if err != nil {
		return 0, 0, 0, err
	}
	s, err := sys.signer(ctx, tok)
	if err != nil {
		return 0, 0, 0, err
	}
	defer s.close()
	parent := "spiffe://" + trustDomain + "/signer"
	specs := make([]entrySpec, cfg.signBatch)
	for i := range specs {
		specs[i] = entrySpec{
			spiffeID:  fmt.Sprintf("spiffe://%s/signed/w%d", trustDomain, i),
			parentID:  parent,
			selectors: []string{"unix:uid:" + strconv.Itoa(200000+i)},
		}
	}
	ids, err := sys.createEntries(ctx, specs)
	if err != nil {
		return 0, 0, 0, err
	}
	reqs := make([]signRequest, cfg.signTotal)
	for i := range reqs {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return 0, 0, 0, err
		}
		u, _ := url.Parse(specs[i%len(specs)].spiffeID)
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, key)
		if err != nil {
			return 0, 0, 0, err
		}
		reqs[i] = signRequest{entryID: ids[i%len(ids)], csr: csr}
	}
	// The server learns of new entries on its own schedule (SPIRE: its
	// entry cache, refreshed every few seconds): wait until it signs all.
	var lastErr error
	if err := waitUntil(ctx, 3*time.Minute, "the server to sign the new entries", nil, func() bool {
		_, lastErr = s.sign(ctx, reqs[:len(ids)])
		return lastErr == nil
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("%w (last: %v)", err, lastErr)
	}

	// The two ways through the node protocol and the raw limit take turns,
	// slice by slice, so that all three meet the same load on a shared
	// machine. A slice is one request per core.
	ca, caKey, err := rawCA()
	if err != nil {
		return 0, 0, 0, err
	}
	var viaOne, viaPerCore, viaRaw time.Duration
	per := cfg.signBatch * runtime.GOMAXPROCS(0)
	for start := 0; start < len(reqs); start += per {
		part := reqs[start:min(start+per, len(reqs))]
		t := time.Now()
		if err := protocolSigning(ctx, s, part, cfg.signBatch, 1); err != nil {
			return 0, 0, 0, err
		}
		viaOne += time.Since(t)
		t = time.Now()
		if err := protocolSigning(ctx, s, part, cfg.signBatch, runtime.GOMAXPROCS(0)); err != nil {
			return 0, 0, 0, err
		}
		viaPerCore += time.Since(t)
		t = time.Now()
		if err := rawSigning(ca, caKey, part); err != nil {
			return 0, 0, 0, err
		}
		viaRaw += time.Since(t)
	}
	n := float64(len(reqs))
	return n / viaOne.Seconds(), n / viaPerCore.Seconds(), n / viaRaw.Seconds(), nil
}

// protocolSigning has reqs signed through the node protocol, in requests
// of batch CSRs, inflight requests at a time.
func protocolSigning(ctx context.Context, s signer, reqs []signRequest, batch, inflight int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range inflight {
		wg.Go(func() {
			for {
				k := int(next.Add(int64(batch))) - batch
				if k >= len(reqs) {
					return
				}
				if _, err := s.sign(ctx, reqs[k:min(k+batch, len(reqs))]); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	return nil
}

// rawCA is a P-256 CA for rawSigning.
func rawCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"SPIFFE"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	return ca, caKey, err
}

// rawSigning is the machine's limit: parse each CSR, check its signature,
// and certify its key with x509.CreateCertificate, on every core.
func rawSigning(ca *x509.Certificate, caKey *ecdsa.PrivateKey, reqs []signRequest) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(reqs) {
					return
				}
				if err := rawSign(ca, caKey, reqs[k].csr); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	return nil
}

func rawSign(ca *x509.Certificate, caKey *ecdsa.PrivateKey, der []byte) error {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return err
	}
	if err := csr.CheckSignature(); err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return err
	}
	spki, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return err
	}
	ski := sha1.Sum(spki)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, URIs: csr.URIs, NotBefore: now.Add(-10 * time.Second), NotAfter: now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, SubjectKeyId: ski[:],
	}
	_, err = x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	return err
}
