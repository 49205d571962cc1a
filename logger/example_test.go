package logger_test

import (
	"log/slog"
	"os"

	"github.com/spiffekit/spiffekit/logger"
)

func ExampleSlog() {
	sl := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	// Pass l to workloadapi.WithLogger.
	l := logger.Slog(sl)
	l.Infof("watching %s", "X.509 context")
	// Output: level=INFO msg="watching X.509 context"
}

func ExampleWriter() {
	l := logger.Writer(os.Stdout)
	l.Warnf("retrying in %s", "1s")
	// Output: [WARN] retrying in 1s
}
