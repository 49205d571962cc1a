package cmdline

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/peterbourgon/ff/v3"
)

// MaxFileSize bounds a configuration file, in bytes.
const MaxFileSize = 1 << 20

// fileError is a problem with the configuration file, already worded for
// the user (it names the file and the key).
type fileError struct{ err error }

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

func fileErrorf(format string, args ...any) error {
	return &fileError{fmt.Errorf(format, args...)}
}

// parseFile is the ff.ConfigFileParser of a configurable command. The file
// must be one JSON object of at most MaxFileSize bytes. Its sections are
// decoded into their values; every other key goes through ff's JSON parser,
// which flattens nested objects into dotted keys and gives each element of
// an array to the flag in turn. Unknown keys are refused, so that a
// misspelt key does not leave a default in place without a word.
func (c *Command) parseFile(r io.Reader, set func(name, value string) error) error {
	name := "the configuration file"
	if f, ok := r.(interface{ Name() string }); ok {
		name = f.Name()
	}
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
			return fileErrorf("%s is not a regular file", name)
		}
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	switch {
	case err != nil:
		return fileErrorf("reading %s: %w", name, err)
	case len(data) > MaxFileSize:
		return fileErrorf("%s is larger than %d bytes", name, MaxFileSize)
	}
	var top map[string]json.RawMessage
	if err := DecodeStrict(data, &top); err != nil {
		return fileErrorf("%s: %w", name, err)
	}
	for _, s := range c.sections {
		raw, ok := top[s.key]
		if !ok {
			continue
		}
		delete(top, s.key)
		if err := DecodeStrict(raw, s.dst); err != nil {
			return fileErrorf("%s: %s: %w", name, s.key, err)
		}
	}
	keys := c.fileKeys()
	rest, err := json.Marshal(top)
	if err != nil {
		return fileErrorf("%s: %w", name, err)
	}
	return ff.JSONParser(bytes.NewReader(rest), func(key, value string) error {
		flagName, ok := keys[key]
		if !ok {
			return fileErrorf("%s: unknown key %q", name, key)
		}
		if err := set(flagName, value); err != nil {
			// ff says "error setting flag ... from config file"; the
			// file and the key say it better.
			if inner := errors.Unwrap(err); inner != nil {
				err = inner
			}
			return fileErrorf("%s: %s: invalid value %q: %w", name, key, value, err)
		}
		return nil
	})
}

// fileKeys maps each key of the configuration file to its flag.
func (c *Command) fileKeys() map[string]string {
	keys := map[string]string{}
	c.fs.VisitAll(func(f *flag.Flag) {
		if f.Name != configFlag {
			keys[c.fileName(f.Name)] = f.Name
		}
	})
	return keys
}

// DecodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and anything after the value: the strict reading of a file the
// user wrote.
func DecodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
