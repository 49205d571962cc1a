package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
)

// Exit codes of the programs.
const (
	// ExitOK: the command succeeded, or printed the help it was asked for
	// (-h), or a run command was stopped by its context (SIGINT, SIGTERM)
	// and shut down cleanly.
	ExitOK = 0
	// ExitFailure: the operation failed; one line on stderr says why.
	ExitFailure = 1
	// ExitUsage: an unknown command or flag, a stray argument, or a flag,
	// environment variable or configuration file key that is missing or
	// has a bad value, or a configuration file that cannot be read.
	ExitUsage = 2
)

// configFlag is the flag of a configurable command that names its
// configuration file.
const configFlag = "config"

// A Command is one command of a program and its keys. Declare the keys,
// then call [Command.Parse] once. A Command is not safe for concurrent use.
type Command struct {
	name, help string
	fs         *flag.FlagSet
	envPrefix  string            // "" unless configurable
	fileNames  map[string]string // flag name -> file key, where Key.File set it
	argNames   map[string]string // flag name -> name of its value in the help, where flag cannot tell it
	required   []string          // flags that must have a value, in the order Required marked them
	sections   []section
	aliases    map[string]string   // alias -> flag name
	aliasesOf  map[string][]string // flag name -> its aliases, in the order declared
	envs       map[string][]string // flag name -> the variables Key.Env gave it
	envOrder   []string            // the flags Key.Env was called for, in order
}

// A section is a part of the configuration file decoded into a Go value.
type section struct {
	key, usage string
	dst        any
}

// New returns a command without keys. name is what the user types, such as
// "spiffe-agent run"; help is printed under the usage line of -h.
func New(name, help string) *Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse prints errors and usage itself, so that help goes to stdout
	// and errors to stderr as one line.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &Command{name: name, help: help, fs: fs, fileNames: map[string]string{}, argNames: map[string]string{},
		aliases: map[string]string{}, aliasesOf: map[string][]string{}, envs: map[string][]string{}}
}

// Name returns the command's name, such as "spiffe-agent run".
func (c *Command) Name() string { return c.name }

// Configurable makes the command read its keys from the environment and a
// configuration file too: it adds the -config flag, and every key (declared
// before or after) is also read from the environment variable envPrefix_KEY
// and from the file. A flag given wins over the environment, which wins
// over the file. envPrefix must not be empty.
func (c *Command) Configurable(envPrefix string) {
	if envPrefix == "" {
		panic("cmdline: Configurable needs an environment variable prefix")
	}
	c.envPrefix = envPrefix
	c.fs.String(configFlag, "", "JSON configuration `file`; flags and environment variables win over its keys")
}

// A Key is a key declared on a command, returned so that its name in the
// configuration file can be set.
type Key struct {
	c    *Command
	name string
}

// File sets the name of the key in the configuration file, when it is not
// the flag's name with '_' for '-'. A dotted name ("node_attestor.x509pop.
// certificate") is a key inside nested objects.
func (k Key) File(name string) Key {
	k.c.fileNames[k.name] = name
	return k
}

// Required marks the key as one the command cannot do without: Parse
// refuses the command, with "-NAME is required", when the key has no value
// (its value's text is empty) after the flags, the environment and the
// file. The key's usage should say "(required)".
func (k Key) Required() Key {
	k.c.required = append(k.c.required, k.name)
	return k
}

// Alias declares further flag names for the key, such as "-parentID"
// beside "-parent-id": each sets the key's one value, as the key's own
// flag would (a list key appends). [Command.Set] and [Command.Visit]
// report the key under its own name, and the help lists the aliases with
// it. Aliases are flags only: they have no environment variable and no
// configuration file key, so Alias panics on a configurable command, and
// when a name is taken.
func (k Key) Alias(names ...string) Key {
	if k.c.envPrefix != "" {
		panic("cmdline: Alias on a configurable command")
	}
	f := k.c.fs.Lookup(k.name)
	for _, a := range names {
		if k.c.fs.Lookup(a) != nil {
			panic("cmdline: flag -" + a + " is declared twice")
		}
		k.c.fs.Var(f.Value, a, f.Usage)
		k.c.aliases[a] = k.name
		k.c.aliasesOf[k.name] = append(k.c.aliasesOf[k.name], a)
	}
	return k
}

// Env names environment variables that give the key its value when no
// other source does (a flag; for a configurable command also its own
// variable PREFIX_NAME and the file): the first of them that is set and
// not empty. A bad value is a usage error naming the variable.
func (k Key) Env(vars ...string) Key {
	if _, ok := k.c.envs[k.name]; !ok {
		k.c.envOrder = append(k.c.envOrder, k.name)
	}
	k.c.envs[k.name] = append(k.c.envs[k.name], vars...)
	return k
}

// String declares a key whose value is text.
func (c *Command) String(p *string, name, value, usage string) Key {
	c.fs.StringVar(p, name, value, usage)
	return Key{c, name}
}

// Bool declares a key whose value is true or false; a flag given alone
// (-name) means true.
func (c *Command) Bool(p *bool, name string, value bool, usage string) Key {
	c.fs.BoolVar(p, name, value, usage)
	return Key{c, name}
}

// Duration declares a key whose value is a Go duration ("90s", "24h").
func (c *Command) Duration(p *time.Duration, name string, value time.Duration, usage string) Key {
	*p = value
	// Not flag's own duration, whose errors say "parse error" only.
	c.fs.Var(NewValue(p, time.ParseDuration), name, usage)
	c.argNames[name] = "duration"
	return Key{c, name}
}

// Var declares a key of any type, such as a [List] or a [Value].
func (c *Command) Var(v flag.Value, name, usage string) Key {
	c.fs.Var(v, name, usage)
	return Key{c, name}
}

// Section declares a part of the configuration file that does not fit
// flags (a list of objects, say). The JSON value under key is decoded into
// dst, refusing unknown fields; it comes from the file only. usage
// describes it in the help. A dotted key ("plugins.k8s") is a value inside
// nested objects, whose other members may be keys of flags
// ("plugins.unix.skip_hash"). A section that is absent leaves dst as it
// is, so that a pointer in dst tells whether it was given.
func (c *Command) Section(key, usage string, dst any) {
	c.sections = append(c.sections, section{key: key, usage: usage, dst: dst})
}

// Set reports whether the key name received a value, from any source and
// under any of its names.
func (c *Command) Set(name string) bool {
	set := false
	c.Visit(func(n string) {
		if n == name {
			set = true
		}
	})
	return set
}

// Visit calls fn with the name of each key that received a value, from
// any source, once, in lexical order; a key set through an alias is
// reported under its own name.
func (c *Command) Visit(fn func(name string)) {
	seen := map[string]bool{}
	var names []string
	c.fs.Visit(func(f *flag.Flag) {
		name := c.canonical(f.Name)
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	})
	slices.Sort(names)
	for _, name := range names {
		fn(name)
	}
}

// canonical returns the key's own name for a flag name or alias.
func (c *Command) canonical(name string) string {
	if own, ok := c.aliases[name]; ok {
		return own
	}
	return name
}

// Parse parses args (the command line after the command's name) and, for a
// configurable command, the environment and the configuration file, then
// checks that every [Key.Required] key has a value. It returns true if the
// command should go on. Otherwise it has printed what to print and returns
// the exit code with false: [ExitOK] after printing the help asked for with
// -h on stdout, [ExitUsage] after printing the problem on stderr.
func (c *Command) Parse(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var opts []ff.Option
	if c.envPrefix != "" {
		opts = append(opts,
			ff.WithEnvVarPrefix(c.envPrefix),
			ff.WithConfigFileFlag(configFlag),
			ff.WithConfigFileParser(c.parseFile))
	}
	err := ff.Parse(c.fs, args, opts...)
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.Usage(stdout)
		return ExitOK, false
	case err != nil:
		return c.Misuse(stderr, parseError(err)), false
	case c.fs.NArg() > 0:
		return c.Misuse(stderr, fmt.Errorf("unexpected argument %q", c.fs.Arg(0))), false
	}
	if err := c.parseEnv(); err != nil {
		return c.Misuse(stderr, err), false
	}
	for _, name := range c.required {
		if c.fs.Lookup(name).Value.String() == "" {
			return c.Misuse(stderr, fmt.Errorf("-%s is required", name)), false
		}
	}
	return ExitOK, true
}

// parseEnv gives each key of [Key.Env] that received no value the value
// of its first variable that is set and not empty.
func (c *Command) parseEnv() error {
	for _, name := range c.envOrder {
		if c.Set(name) {
			continue
		}
		for _, v := range c.envs[name] {
			val := os.Getenv(v)
			if val == "" {
				continue
			}
			if err := c.fs.Set(name, val); err != nil {
				return fmt.Errorf("environment variable %s: invalid value %q: %w", v, val, err)
			}
			break
		}
	}
	return nil
}

// parseError returns the part of an error from ff.Parse worth printing:
// ff prefixes errors with the stage that failed ("error parsing commandline
// arguments"), which the flag's, variable's or file's name already tells.
func parseError(err error) error {
	var fe *fileError
	if errors.As(err, &fe) {
		return fe
	}
	var pe *fs.PathError
	if errors.As(err, &pe) { // opening the configuration file failed
		return fmt.Errorf("configuration file: %w", pe)
	}
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
}

// Fail prints err on stderr as one line, after the command's name, and
// returns [ExitFailure].
func (c *Command) Fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %s\n", c.name, OneLine(err))
	return ExitFailure
}

// Misuse prints err on stderr as one line, after the command's name, with
// a pointer to the help, and returns [ExitUsage].
func (c *Command) Misuse(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %s\nRun \"%s -h\" for help.\n", c.name, OneLine(err), c.name)
	return ExitUsage
}

// OneLine returns the message of err on one line, as scripts expect.
func OneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// Usage prints the command's help to w: the usage line, the help text and
// every flag with its default and, for a configurable command, its
// environment variable and configuration file key.
func (c *Command) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n", c.name)
	if c.help != "" {
		fmt.Fprintf(w, "%s\n\n", c.help)
	}
	fmt.Fprintln(w, "Flags:")
	c.fs.VisitAll(func(f *flag.Flag) {
		if _, ok := c.aliases[f.Name]; ok {
			return // listed with its key
		}
		arg, usage := flag.UnquoteUsage(f)
		if name, ok := c.argNames[f.Name]; ok && arg == "value" {
			arg = name
		}
		fmt.Fprintf(w, "  -%s", f.Name)
		if arg != "" {
			fmt.Fprintf(w, " %s", arg)
		}
		fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
		if !isZero(f.DefValue) {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		if aliases := c.aliasesOf[f.Name]; len(aliases) > 0 {
			fmt.Fprintf(w, "\n    \talso -%s", strings.Join(aliases, ", -"))
		}
		var envs []string
		if c.envPrefix != "" {
			envs = append(envs, c.envName(f.Name))
		}
		envs = append(envs, c.envs[f.Name]...)
		if len(envs) > 0 {
			fmt.Fprintf(w, "\n    \tenvironment %s", strings.Join(envs, ", then "))
		}
		if c.envPrefix != "" && f.Name != configFlag {
			fmt.Fprintf(w, ", file key %s", c.fileName(f.Name))
		}
		fmt.Fprintln(w)
	})
	if c.envPrefix == "" {
		return
	}
	for _, s := range c.sections {
		fmt.Fprintf(w, "\nFile only:\n  %s\n    \t%s\n", s.key, strings.ReplaceAll(s.usage, "\n", "\n    \t"))
	}
	fmt.Fprintln(w, "\nA flag given wins over its environment variable, which wins over the file's key.")
}

func isZero(def string) bool {
	switch def {
	case "", "0", "0s", "false":
		return true
	}
	return false
}

// envName is the environment variable of a flag, as ff derives it.
func (c *Command) envName(flagName string) string {
	return c.envPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(flagName))
}

// fileName is the configuration file key of a flag.
func (c *Command) fileName(flagName string) string {
	if name, ok := c.fileNames[flagName]; ok {
		return name
	}
	return strings.ReplaceAll(flagName, "-", "_")
}
