package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// Exit statuses.
const (
	exitPass    = 0
	exitFail    = 1
	exitCantRun = 2
)

const usage = `usage: spiffe-conformance x509|bundle|jwt|wit|workload|bundle-endpoint|sds|oidc [flags] [FILE]
run "spiffe-conformance MODE -h" for a mode's flags`

// bundleFlags collects repeated -bundle TD=FILE flags.
type bundleFlags map[string]string

func (b bundleFlags) String() string { return fmt.Sprint(map[string]string(b)) }

func (b bundleFlags) Set(v string) error {
	td, file, ok := strings.Cut(v, "=")
	if !ok || td == "" || file == "" {
		return errors.New("want TRUST-DOMAIN=FILE")
	}
	b[td] = file
	return nil
}

// run is the program: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitCantRun
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("spiffe-conformance "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", "text", "report format: text, json or junit")
	out := fs.String("o", "", "write the report to this file instead of standard output")
	bundles := bundleFlags{}
	var report func() (*kit.Report, error)
	switch mode {
	case "x509":
		fs.Var(bundles, "bundle", "TRUST-DOMAIN=FILE: that trust domain's X.509 authorities (PEM, or a SPIFFE bundle document); repeatable")
		report = func() (*kit.Report, error) { return checkX509(fs.Args(), bundles) }
	case "bundle":
		previous := fs.String("previous", "", "an earlier version of the same trust domain's bundle document, for the sequence rule")
		report = func() (*kit.Report, error) { return checkBundle(fs.Args(), *previous) }
	case "jwt":
		fs.Var(bundles, "bundle", "TRUST-DOMAIN=FILE: that trust domain's JWT-SVID keys (a JWK Set or a SPIFFE bundle document); repeatable")
		audience := fs.String("audience", "", "the audience the token must carry")
		report = func() (*kit.Report, error) { return checkJWT(fs.Args(), stdin, bundles, *audience) }
	case "wit":
		fs.Var(bundles, "bundle", "TRUST-DOMAIN=FILE: that trust domain's WIT-SVID keys (a JWK Set or a SPIFFE bundle document); repeatable")
		key := fs.String("key", "", "the WIT-SVID's private key as a JWK (as the Workload API serves it), checked against cnf.jwk")
		report = func() (*kit.Report, error) { return checkWIT(fs.Args(), stdin, bundles, *key) }
	case "workload":
		w := workloadFlags(fs)
		report = func() (*kit.Report, error) { return w.check(ctx) }
	case "bundle-endpoint":
		b := bundleEndpointFlags(fs)
		report = func() (*kit.Report, error) { return b.check(ctx) }
	case "oidc":
		o := oidcFlags(fs)
		report = func() (*kit.Report, error) { return o.check(ctx) }
	case "sds":
		var cfg kit.SDSConfig
		fs.StringVar(&cfg.Addr, "addr", "", "the endpoint serving SDS (usually the Workload API's): unix:///PATH, tcp://IP:PORT or, on Windows, npipe:NAME (required)")
		fs.DurationVar(&cfg.Timeout, "timeout", kit.DefaultTimeout, "bound on every call")
		report = func() (*kit.Report, error) {
			if cfg.Addr == "" {
				return nil, fmt.Errorf("-addr is required")
			}
			return kit.CheckSDS(ctx, cfg)
		}
	default:
		fmt.Fprintln(stderr, usage)
		return exitCantRun
	}
	if err := fs.Parse(args); err != nil {
		return exitCantRun
	}
	if f := kit.Format(*format); f != kit.FormatText && f != kit.FormatJSON && f != kit.FormatJUnit {
		fmt.Fprintf(stderr, "spiffe-conformance: unknown -format %q (text, json or junit)\n", *format)
		return exitCantRun
	}
	r, err := report()
	if err != nil {
		fmt.Fprintf(stderr, "spiffe-conformance: %v\n", err)
		return exitCantRun
	}
	r.Finish()
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "spiffe-conformance: %v\n", err)
			return exitCantRun
		}
		defer f.Close()
		w = f
	}
	if err := r.Write(w, kit.Format(*format)); err != nil {
		fmt.Fprintf(stderr, "spiffe-conformance: writing the report: %v\n", err)
		return exitCantRun
	}
	if r.Failed() {
		return exitFail
	}
	return exitPass
}

// oneFile returns the one file argument.
func oneFile(args []string) (string, error) {
	if len(args) != 1 {
		return "", fmt.Errorf("want one file, got %d arguments", len(args))
	}
	return args[0], nil
}

func checkX509(args []string, bundles bundleFlags) (*kit.Report, error) {
	name, err := oneFile(args)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	chain, key, err := kit.ParseX509SVIDPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	svid := kit.X509SVID{Chain: chain, Key: key}
	if len(bundles) > 0 {
		svid.Bundles = map[string][]*x509.Certificate{}
		for td, file := range bundles {
			if svid.Bundles[td], err = readX509Authorities(file); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
		}
	}
	r := kit.NewReport(kit.ModeX509, name)
	r.CheckX509SVID(svid, time.Now())
	return r, nil
}

// readX509Authorities reads PEM certificates, or the x509-svid keys of a
// SPIFFE bundle document.
func readX509Authorities(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !isJSON(data) {
		return kit.ParseCertificatesPEM(data)
	}
	var doc struct {
		Keys []struct {
			Use string   `json:"use"`
			X5c []string `json:"x5c"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, k := range doc.Keys {
		if k.Use != "x509-svid" || len(k.X5c) == 0 {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	return out, nil
}

func checkBundle(args []string, previous string) (*kit.Report, error) {
	name, err := oneFile(args)
	if err != nil {
		return nil, err
	}
	doc, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	r := kit.NewReport(kit.ModeBundle, name)
	r.CheckBundle("bundle", doc)
	if previous != "" {
		prev, err := os.ReadFile(previous)
		if err != nil {
			return nil, err
		}
		r.CheckBundleUpdate("previous then bundle", prev, doc)
	}
	return r, nil
}

// readToken reads the token in the one file argument, or on standard
// input for "-".
func readToken(args []string, stdin io.Reader) (name, token string, err error) {
	if name, err = oneFile(args); err != nil {
		return "", "", err
	}
	var data []byte
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		data, err = os.ReadFile(name)
	}
	return name, string(bytes.TrimSpace(data)), err
}

// readKeys reads each trust domain's keys with parse.
func readKeys(bundles bundleFlags, parse func([]byte) ([]jose.JSONWebKey, error)) (map[string][]jose.JSONWebKey, error) {
	if len(bundles) == 0 {
		return nil, nil
	}
	keys := map[string][]jose.JSONWebKey{}
	for td, file := range bundles {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if keys[td], err = parse(data); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return keys, nil
}

func checkJWT(args []string, stdin io.Reader, bundles bundleFlags, audience string) (*kit.Report, error) {
	name, token, err := readToken(args, stdin)
	if err != nil {
		return nil, err
	}
	svid := kit.JWTSVID{Token: token, Audience: audience}
	if svid.Keys, err = readKeys(bundles, kit.ParseJWKSet); err != nil {
		return nil, err
	}
	r := kit.NewReport(kit.ModeJWT, name)
	r.CheckJWTSVID(svid, time.Now())
	return r, nil
}

func checkWIT(args []string, stdin io.Reader, bundles bundleFlags, keyFile string) (*kit.Report, error) {
	name, token, err := readToken(args, stdin)
	if err != nil {
		return nil, err
	}
	svid := kit.WITSVID{Token: token}
	if svid.Keys, err = readKeys(bundles, kit.ParseWITKeySet); err != nil {
		return nil, err
	}
	if keyFile != "" {
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		svid.Key = string(bytes.TrimSpace(key))
	}
	r := kit.NewReport(kit.ModeWIT, name)
	r.CheckWITSVID(svid, time.Now())
	return r, nil
}

func isJSON(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
}
