package cmdline_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
)

func TestList(t *testing.T) {
	tests := []struct {
		name   string
		sep    string
		values []string
		want   []int
		err    bool
	}{
		{"one value", "", []string{"1"}, []int{1}, false},
		{"repeated", "", []string{"1", "2", "3"}, []int{1, 2, 3}, false},
		{"split", ",", []string{"1, 2", "3,", ",4"}, []int{1, 2, 3, 4}, false},
		{"separator kept when not splitting", "", []string{"1,2"}, nil, true},
		{"bad value", ",", []string{"1", "x"}, []int{1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			l := cmdline.NewList(&got, strconv.Atoi, tt.sep)
			var err error
			for _, v := range tt.values {
				if err = l.Set(v); err != nil {
					break
				}
			}
			assert.Equal(t, tt.err, err != nil, err)
			assert.Equal(t, tt.want, got)
		})
	}

	var words []string
	l := cmdline.NewList(&words, cmdline.Text, "")
	assert.Equal(t, "", l.String())
	require.NoError(t, l.Set("a b"))
	require.NoError(t, l.Set("c"))
	assert.Equal(t, []string{"a b", "c"}, words)
	assert.Equal(t, "a b,c", l.String())
	assert.Equal(t, "", (*cmdline.List[string])(nil).String(), "the flag package calls String on a zero value")
}

func TestValue(t *testing.T) {
	var n int
	v := cmdline.NewValue(&n, strconv.Atoi)
	require.NoError(t, v.Set("42"))
	assert.Equal(t, 42, n)
	assert.Equal(t, "42", v.String())
	err := v.Set("x")
	assert.True(t, errors.Is(err, strconv.ErrSyntax), err)
	assert.Equal(t, 42, n, "a bad value leaves the value")
	assert.Equal(t, "", (*cmdline.Value[int])(nil).String())
}

func ExampleList() {
	var servers []string
	cmd := cmdline.New("spiffe-agent run", "")
	cmd.Var(cmdline.NewList(&servers, cmdline.Text, ","), "server", "server `host:port` (repeatable)")
	cmd.Parse([]string{"-server", "a:8081,b:8081", "-server", "c:8081"}, nil, nil)
	fmt.Println(servers)
	// Output: [a:8081 b:8081 c:8081]
}

func ExampleCommand() {
	dir, err := os.MkdirTemp("", "cmdline-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(path, []byte(`{"trust_domain": "file.example", "servers": ["f:1"], "log_level": "debug"}`), 0o600); err != nil {
		panic(err)
	}
	os.Setenv("EXAMPLE_AGENT_SERVER", "e1:1,e2:2")
	defer os.Unsetenv("EXAMPLE_AGENT_SERVER")

	var trustDomain, logLevel string
	var servers []string
	cmd := cmdline.New("example-agent run", "Runs the agent.")
	cmd.Configurable("EXAMPLE_AGENT")
	cmd.String(&trustDomain, "trust-domain", "", "trust `domain`")
	cmd.Var(cmdline.NewList(&servers, cmdline.Text, ","), "server", "server `host:port`").File("servers")
	cmd.String(&logLevel, "log-level", "info", "log level")
	if code, ok := cmd.Parse([]string{"-config", path, "-log-level", "warn"}, os.Stdout, os.Stdout); !ok {
		os.Exit(code)
	}
	fmt.Println(trustDomain, servers, logLevel)
	// Output: file.example [e1:1 e2:2] warn
}
