// Command ghostunnel stands in for ghostunnel, the TLS proxy that
// spiffe-helper's example configuration starts, in the end-to-end test of
// spiffe-helper: it takes the example's command line (server --listen
// --target --keystore --cacert --allow-uri-san), loads its key, the SVID
// beside it (svid.pem, or $GHOSTUNNEL_CERT) and its CA bundle at start and
// again at each SIGUSR1 or SIGHUP, as ghostunnel reloads, and appends to
// $GHOSTUNNEL_LOG one line per load:
//
//	pid<TAB>event<TAB>serial of the leaf<TAB>ok, or what was wrong
//
// "ok" means the key matches the certificate and the chain verifies
// against the bundle. It exits 0 on SIGTERM, after a line "term". It
// listens on nothing.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "server" {
		fmt.Fprintln(os.Stderr, "usage: ghostunnel server --listen ADDR --target ADDR --keystore FILE --cacert FILE [--allow-uri-san URI]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("ghostunnel server", flag.ExitOnError)
	fs.String("listen", "", "address to listen on (unused)")
	fs.String("target", "", "address to forward to (unused)")
	keystore := fs.String("keystore", "", "private key file")
	cacert := fs.String("cacert", "", "CA bundle file")
	fs.String("allow-uri-san", "", "peer SPIFFE ID to allow (unused)")
	fs.Parse(os.Args[2:])
	cert := os.Getenv("GHOSTUNNEL_CERT")
	if cert == "" {
		cert = filepath.Join(filepath.Dir(*keystore), "svid.pem")
	}
	logFile := os.Getenv("GHOSTUNNEL_LOG")

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGTERM)
	record(logFile, "start", cert, *keystore, *cacert)
	for sig := range sigs {
		if sig == syscall.SIGTERM {
			record(logFile, "term", cert, *keystore, *cacert)
			return
		}
		record(logFile, unix.SignalName(sig.(syscall.Signal)), cert, *keystore, *cacert)
	}
}

// record loads the files and appends what it found to the log.
func record(logFile, event, certFile, keyFile, caFile string) {
	serial, err := load(certFile, keyFile, caFile)
	status := "ok"
	if err != nil {
		status = err.Error()
	}
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	fmt.Fprintf(f, "%d\t%s\t%s\t%s\n", os.Getpid(), event, serial, status)
}

func load(certFile, keyFile, caFile string) (serial string, err error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return "-", err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return "-", err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return "-", err
	}
	leaf := pair.Leaf
	serial = leaf.SerialNumber.String()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return serial, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return serial, errors.New("no certificate in the CA bundle")
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return serial, err
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return serial, err
	}
	if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
		return serial, errors.New("the key is not a PKCS#8 PRIVATE KEY block")
	}
	return serial, nil
}
