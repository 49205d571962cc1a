package logger

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Slog returns a Logger that forwards every message to l at the matching
// level (Debugf to slog.LevelDebug, and so on). A nil l discards everything.
//
// This is how a *slog.Logger is handed to the Workload API client, whose
// WithLogger option keeps go-spiffe's signature:
//
//	workloadapi.WithLogger(logger.Slog(l))
//
// The client recognises a Logger made by Slog and logs to l directly, with
// structured attributes instead of preformatted text.
func Slog(l *slog.Logger) Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return slogLogger{l: l}
}

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Debugf(format string, args ...any) { s.log(slog.LevelDebug, format, args) }
func (s slogLogger) Infof(format string, args ...any)  { s.log(slog.LevelInfo, format, args) }
func (s slogLogger) Warnf(format string, args ...any)  { s.log(slog.LevelWarn, format, args) }
func (s slogLogger) Errorf(format string, args ...any) { s.log(slog.LevelError, format, args) }

func (s slogLogger) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !s.l.Enabled(ctx, level) {
		return // skip formatting for disabled levels
	}
	s.l.Log(ctx, level, fmt.Sprintf(format, args...))
}

// ToSlog returns a *slog.Logger that writes to l. It is the conversion the
// module's own packages use internally, so that they log through log/slog
// while accepting a Logger in go-spiffe-compatible signatures.
//
// A Logger made by [Slog] gives back its *slog.Logger, and nil or [Null]
// gives a logger that discards everything. Any other Logger gets a handler
// that renders each record as "message key=value ..." (attributes in
// slog's text form) and passes it to the method for its level: Debugf below
// slog.LevelInfo, Infof below slog.LevelWarn, Warnf below slog.LevelError,
// and Errorf from there up.
func ToSlog(l Logger) *slog.Logger {
	switch l := l.(type) {
	case nil, nullLogger:
		return slog.New(slog.DiscardHandler)
	case slogLogger:
		return l.l
	}
	return slog.New(&handler{l: l})
}

// handler is a slog.Handler that forwards formatted records to a Logger.
type handler struct {
	l      Logger
	prefix string // rendered attributes added with WithAttrs and WithGroup
	group  string // current group, dot-terminated, for keys of later attributes
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	msg := b.String()
	switch {
	case r.Level < slog.LevelInfo:
		h.l.Debugf("%s", msg)
	case r.Level < slog.LevelWarn:
		h.l.Infof("%s", msg)
	case r.Level < slog.LevelError:
		h.l.Warnf("%s", msg)
	default:
		h.l.Errorf("%s", msg)
	}
	return nil
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range attrs {
		appendAttr(&b, h.group, a)
	}
	return &handler{l: h.l, prefix: b.String(), group: h.group}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{l: h.l, prefix: h.prefix, group: h.group + name + "."}
}

// appendAttr writes " key=value", flattening groups into dotted keys.
func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group)
	b.WriteString(a.Key)
	b.WriteByte('=')
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\n\"=") || v == "" {
		fmt.Fprintf(b, "%q", v)
		return
	}
	b.WriteString(v)
}
