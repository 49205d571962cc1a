package logger_test

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/spiffekit/spiffekit/logger"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	l := logger.Writer(&buf)
	l.Debugf("d %d", 1)
	l.Infof("i %s", "x")
	l.Warnf("w")
	l.Errorf("e %v", 100)
	assert.Equal(t, "[DEBUG] d 1\n[INFO] i x\n[WARN] w\n[ERROR] e 100\n", buf.String())
}

func TestWriterConcurrent(t *testing.T) {
	var buf bytes.Buffer
	l := logger.Writer(&buf)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				l.Infof("line")
			}
		})
	}
	wg.Wait()
	assert.Equal(t, strings.Repeat("[INFO] line\n", 400), buf.String())
}

func TestStd(t *testing.T) {
	var buf bytes.Buffer
	flags, out := log.Flags(), log.Writer()
	log.SetFlags(0)
	log.SetOutput(&buf)
	defer func() { log.SetFlags(flags); log.SetOutput(out) }()
	logger.Std.Debugf("a%d", 1)
	logger.Std.Infof("b")
	logger.Std.Warnf("c")
	logger.Std.Errorf("d")
	assert.Equal(t, "[DEBUG] a1\n[INFO] b\n[WARN] c\n[ERROR] d\n", buf.String())
}

func TestNull(t *testing.T) {
	logger.Null.Debugf("x")
	logger.Null.Infof("x")
	logger.Null.Warnf("x")
	logger.Null.Errorf("x")
	assert.True(t, logger.ToSlog(logger.Null).Handler() == slog.DiscardHandler)
	assert.True(t, logger.ToSlog(nil).Handler() == slog.DiscardHandler)
}

func TestSlog(t *testing.T) {
	var buf bytes.Buffer
	sl := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	l := logger.Slog(sl)
	l.Debugf("hidden %d", 1)
	l.Infof("i %d", 1)
	l.Warnf("w")
	l.Errorf("e")
	assert.Equal(t, "level=INFO msg=\"i 1\"\nlevel=WARN msg=w\nlevel=ERROR msg=e\n", buf.String())
	// The conversion back gives the same *slog.Logger.
	assert.Same(t, sl, logger.ToSlog(l))
	// nil discards.
	logger.Slog(nil).Errorf("nothing")
}

func TestToSlog(t *testing.T) {
	var buf bytes.Buffer
	sl := logger.ToSlog(logger.Writer(&buf))
	require.True(t, sl.Enabled(context.Background(), slog.LevelDebug))
	sl.Debug("d", "k", 1)
	sl.Info("i", "s", "two words", "e", "")
	sl.Warn("w", slog.Group("g", "a", 1, slog.Group("h", "b", true)), slog.Attr{})
	sl.With("id", "spiffe://example.org/x").WithGroup("req").WithGroup("").Error("e", "n", 2)
	sl.Log(context.Background(), slog.LevelError+4, "fatal")
	assert.Equal(t, strings.Join([]string{
		"[DEBUG] d k=1",
		`[INFO] i s="two words" e=""`,
		"[WARN] w g.a=1 g.h.b=true",
		"[ERROR] e id=spiffe://example.org/x req.n=2",
		"[ERROR] fatal",
		"",
	}, "\n"), buf.String())
}
