package cmdline

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"

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
		raw, ok, err := take(top, strings.Split(s.key, "."))
		if err != nil {
			return fileErrorf("%s: %w", name, err)
		}
		if !ok {
			continue
		}
		if err := DecodeStrict(raw, s.dst); err != nil {
			return fileErrorf("%s: %s: %w", name, s.key, err)
		}
	}
	keys := c.fileKeys()
	// An empty object gives ff no key to refuse: it must lead to keys.
	if key, ok := emptyObject(top, "", keys); ok {
		return fileErrorf("%s: unknown key %q", name, key)
	}
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

// take removes the value at the dotted key path from the object m and
// returns it, leaving the rest of the objects on the way for the keys.
func take(m map[string]json.RawMessage, path []string) (json.RawMessage, bool, error) {
	raw, ok := m[path[0]]
	if !ok {
		return nil, false, nil
	}
	if len(path) == 1 {
		delete(m, path[0])
		return raw, true, nil
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(raw, &inner); err != nil {
		return nil, false, fmt.Errorf("%s: want a JSON object", path[0])
	}
	v, ok, err := take(inner, path[1:])
	if err != nil {
		return nil, false, fmt.Errorf("%s.%w", path[0], err)
	}
	if !ok {
		return nil, false, nil
	}
	if len(inner) == 0 {
		delete(m, path[0])
	} else if m[path[0]], err = json.Marshal(inner); err != nil {
		return nil, false, err
	}
	return v, true, nil
}

// emptyObject returns the dotted path of an empty object in m (under
// prefix) that no key of keys is inside, if there is one.
func emptyObject(m map[string]json.RawMessage, prefix string, keys map[string]string) (string, bool) {
	for k, raw := range m {
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) != nil || inner == nil {
			continue // not an object: ff reads it
		}
		path := prefix + k
		if len(inner) == 0 {
			known := false
			for key := range keys {
				known = known || strings.HasPrefix(key, path+".")
			}
			if !known {
				return path, true
			}
			continue
		}
		if p, ok := emptyObject(inner, path+".", keys); ok {
			return p, true
		}
	}
	return "", false
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
