package logger

import (
	"fmt"
	"io"
	"log"
	"sync"
)

// Logger provides logging facilities to the library. Implementations must be
// safe for concurrent use: the Workload API client logs from its watch
// goroutines.
type Logger interface {
	Debugf(format string, args ...any)
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Null is a no-op logger. It is used to suppress logging and is the default
// logger for the library.
var Null Logger = nullLogger{}

// Std is a logger that uses the Go standard log library: each message becomes
// one line "[LEVEL] message" written with log.Print, so it gets the standard
// logger's prefix and flags.
var Std Logger = stdLogger{}

// Writer provides a logger that outputs logging to the given writer, one line
// "[LEVEL] message" per call. Writes are serialised, so lines logged from
// several goroutines do not interleave. Write errors are ignored.
func Writer(w io.Writer) Logger {
	return &writerLogger{w: w}
}

type nullLogger struct{}

func (nullLogger) Debugf(string, ...any) {}
func (nullLogger) Infof(string, ...any)  {}
func (nullLogger) Warnf(string, ...any)  {}
func (nullLogger) Errorf(string, ...any) {}

type stdLogger struct{}

func (stdLogger) Debugf(format string, args ...any) { log.Print(line("DEBUG", format, args)) }
func (stdLogger) Infof(format string, args ...any)  { log.Print(line("INFO", format, args)) }
func (stdLogger) Warnf(format string, args ...any)  { log.Print(line("WARN", format, args)) }
func (stdLogger) Errorf(format string, args ...any) { log.Print(line("ERROR", format, args)) }

type writerLogger struct {
	mu sync.Mutex // serialises writes to w
	w  io.Writer
}

func (l *writerLogger) Debugf(format string, args ...any) { l.write("DEBUG", format, args) }
func (l *writerLogger) Infof(format string, args ...any)  { l.write("INFO", format, args) }
func (l *writerLogger) Warnf(format string, args ...any)  { l.write("WARN", format, args) }
func (l *writerLogger) Errorf(format string, args ...any) { l.write("ERROR", format, args) }

func (l *writerLogger) write(level, format string, args []any) {
	s := line(level, format, args)
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, s)
}

// line formats one log line, "[LEVEL] message\n".
func line(level, format string, args []any) string {
	return "[" + level + "] " + fmt.Sprintf(format, args...) + "\n"
}
