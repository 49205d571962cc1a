//go:build windows

package workloadapi

// WithNamedPipeName provides a Pipe Name for the Workload API endpoint in
// the form \\.\pipe\<PipeName>. It cannot be used with WithAddr. The name
// follows the rules of an "npipe:" address (see TargetFromAddress).
func WithNamedPipeName(namedPipeName string) ClientOption {
	return clientOption(func(c *clientConfig) { c.namedPipeName = namedPipeName })
}
