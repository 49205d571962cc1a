package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// maxResponseSize bounds what is read of one answer of the daemon. A
// container's description is a few KiB; its labels and environment make it
// grow, but not to megabytes.
const maxResponseSize = 8 << 20

// maxErrorMessage bounds how much of a daemon's error message is quoted
// in an error.
const maxErrorMessage = 256

// engine is a client of the one call of the Docker Engine API the
// attestor makes, on the daemon's unix socket. It is plain net/http over
// the documented API: GET /containers/{id}/json, unversioned, so that the
// daemon answers in its own current version, whose fields used here have
// not changed since the API's first versions.
type engine struct {
	client  *http.Client
	timeout time.Duration
}

func newEngine(socket string, timeout time.Duration) *engine {
	return &engine{
		timeout: timeout,
		client: &http.Client{Transport: &http.Transport{
			// A connection per call: the attestor then holds nothing
			// between attestations and needs no closing, and a unix
			// socket connects in microseconds.
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", socket)
			},
		}},
	}
}

// container is what the attestor reads of the daemon's description of a
// container.
type container struct {
	ID    string `json:"Id"`
	Image string `json:"Image"` // the image's ID, "sha256:<hex>"
	State struct {
		Running bool `json:"Running"`
		Pid     int  `json:"Pid"`
	} `json:"State"`
	Config struct {
		Image  string            `json:"Image"` // as the container was created from it
		Labels map[string]string `json:"Labels"`
		Env    []string          `json:"Env"`
	} `json:"Config"`
}

// inspect returns the description of container id; found is false if the
// daemon does not know it.
func (e *engine) inspect(ctx context.Context, id string) (c container, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/containers/"+id+"/json", nil)
	if err != nil {
		return container{}, false, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return container{}, false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return container{}, false, fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if len(data) > maxResponseSize {
		return container{}, false, fmt.Errorf("the daemon's answer is larger than %d bytes", maxResponseSize)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return container{}, false, nil
	default:
		return container{}, false, fmt.Errorf("the daemon answered %s: %s", resp.Status, errorMessage(data))
	}
	if c, err = parseContainer(data); err != nil {
		return container{}, false, err
	}
	if c.ID != id {
		return container{}, false, fmt.Errorf("the daemon described container %q instead", c.ID)
	}
	return c, true, nil
}

// parseContainer decodes the daemon's description of a container.
func parseContainer(data []byte) (container, error) {
	var c container
	if err := json.Unmarshal(data, &c); err != nil {
		return container{}, fmt.Errorf("decoding the daemon's answer: %w", err)
	}
	return c, nil
}

// errorMessage returns the message of an error answer of the daemon
// ({"message": "..."}), shortened, or the start of the body.
func errorMessage(data []byte) string {
	var body struct {
		Message string `json:"message"`
	}
	msg := string(bytes.TrimSpace(data))
	if json.Unmarshal(data, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
		for !utf8.ValidString(msg) {
			msg = msg[:len(msg)-1]
		}
		msg += "..."
	}
	if msg == "" {
		return "no message"
	}
	return strings.ToValidUTF8(msg, "?")
}
