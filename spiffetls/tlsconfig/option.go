package tlsconfig

// An Option changes the defaults of the functions of this package that take
// options. Options are applied in order; the last one wins.
type Option interface {
	apply(*options)
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	trace Trace
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	return o
}

// WithTrace sets callbacks that are invoked around every fetch of an
// X509-SVID by the functions that present one ([GetCertificate],
// [GetClientCertificate] and the configs built on them). The default traces
// nothing.
func WithTrace(trace Trace) Option {
	return optionFunc(func(o *options) { o.trace = trace })
}
