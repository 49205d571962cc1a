// Package bodylimit bounds the size of HTTP response bodies read from
// services the caller does not control (the metadata services of the cloud
// node attestors, their servers' cloud APIs, an upstream Vault): a response
// declared or found longer than the limit fails with the caller's error
// instead of being read into memory.
package bodylimit

import (
	"io"
	"net/http"
)

// Limit makes reading resp's body fail with tooLarge once more than max
// bytes were read. A response whose declared length is over max is closed
// and refused at once with tooLarge.
func Limit(resp *http.Response, max int64, tooLarge error) error {
	if resp.ContentLength > max {
		resp.Body.Close()
		return tooLarge
	}
	resp.Body = &body{rc: resp.Body, left: max, tooLarge: tooLarge}
	return nil
}

// body is a response body that fails past its limit.
type body struct {
	rc       io.ReadCloser
	left     int64
	tooLarge error
}

func (b *body) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge
	}
	// One byte past the limit tells a body of exactly max bytes from a
	// longer one.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, b.tooLarge
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
