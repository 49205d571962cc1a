package provider

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Exit codes of [Main].
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// DefaultConfigPath is the configuration file read without -config, as
// SPIRE's provider names it.
const DefaultConfigPath = "oidc-discovery-provider.conf"

// Main is the program: it reads -config, runs the provider until ctx is
// done and returns the exit code: ExitOK after a clean stop (or -h),
// ExitUsage for bad flags or a bad configuration, ExitFailure when the
// provider cannot start or fails.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("oidc-discovery-provider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", DefaultConfigPath, "configuration `file` (JSON, with the keys of SPIRE's provider)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oidc-discovery-provider: unexpected arguments %q\n", fs.Args())
		return ExitUsage
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "oidc-discovery-provider: %v\n", err)
		return ExitUsage
	}
	log, closeLog, err := NewLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "oidc-discovery-provider: %v\n", err)
		return ExitUsage
	}
	defer closeLog()
	s, err := New(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "oidc-discovery-provider: %v\n", err)
		return ExitUsage
	}
	if err := s.Run(ctx); err != nil {
		log.Error("provider failed", "err", err)
		fmt.Fprintf(stderr, "oidc-discovery-provider: %v\n", err)
		return ExitFailure
	}
	log.Info("provider stopped")
	return ExitOK
}

// NewLogger returns the logger cfg describes (log_level, log_format,
// log_path; stderr without a path) and the function that closes its file.
func NewLogger(cfg *Config, stderr io.Writer) (*slog.Logger, func(), error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, nil, fmt.Errorf("log_level: %w", err)
	}
	w, closeFn := stderr, func() {}
	if cfg.LogPath != "" {
		f, err := os.OpenFile(cfg.LogPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log_path: %w", err)
		}
		w, closeFn = f, func() { f.Close() }
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), closeFn, nil
}
