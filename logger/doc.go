// Package logger is the small logging interface that the Workload API client
// accepts, with ready-made implementations: [Null] discards, [Std] writes
// through the standard library's log package, [Writer] writes to any
// io.Writer, and [Slog] forwards to a *slog.Logger.
//
// The interface matches go-spiffe's, so code written against it keeps
// compiling. Inside this module everything logs through log/slog; [ToSlog]
// does the conversion and unwraps a Logger made by [Slog].
//
// # Usage
//
// To send the client's logs to a *slog.Logger, wrap it with [Slog]:
//
//	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
//	source, err := workloadapi.NewX509Source(ctx,
//		workloadapi.WithClientOptions(workloadapi.WithLogger(logger.Slog(log))),
//	)
//
// Or keep the go-spiffe style:
//
//	client, err := workloadapi.New(ctx, workloadapi.WithLogger(logger.Writer(os.Stderr)))
package logger
