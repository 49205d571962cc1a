package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// DefaultDevice is the TPM the agent opens when none is configured: the
// kernel's resource-managed TPM device.
const DefaultDevice = "/dev/tpmrm0"

// maxResponse bounds a TPM response; the largest a TPM 2.0 sends is a few
// KiB (TPM_PT_MAX_RESPONSE_SIZE is 4096 on common TPMs).
const maxResponse = 64 << 10

// commandTimeout bounds one command over a socket: an RSA key generation
// in a software TPM takes a second or two.
const commandTimeout = 2 * time.Minute

// OpenDevice opens the TPM at path: a character device such as
// /dev/tpmrm0, or a unix socket that serves raw TPM 2.0 commands (swtpm's
// "--server type=unixio"). Commands are sent one at a time.
func OpenDevice(path string) (transport.TPMCloser, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tpm: %w", err)
	}
	var rw io.ReadWriteCloser
	var stream bool
	if fi.Mode()&os.ModeSocket != 0 {
		c, err := net.DialTimeout("unix", path, 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("tpm: %w", err)
		}
		rw, stream = c, true
	} else if fi.Mode()&os.ModeCharDevice != 0 {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("tpm: %w", err)
		}
		rw = f
	} else {
		return nil, fmt.Errorf("tpm: %s is neither a character device nor a unix socket", path)
	}
	return &device{rw: rw, stream: stream}, nil
}

// device sends commands over a character device, which answers each write
// with one read, or a stream, where a response is read by its header's
// size.
type device struct {
	mu     sync.Mutex
	rw     io.ReadWriteCloser
	stream bool
}

// Response codes after which a TPM asks for the same command again: it did
// not start it (TPM_RC_RETRY), stopped it to do something else
// (TPM_RC_YIELDED), or is testing itself (TPM_RC_TESTING).
const (
	rcRetry   = 0x922
	rcYielded = 0x908
	rcTesting = 0x90a
)

// maxRetries bounds how often a command is sent again.
const maxRetries = 20

// Send sends one command and returns the TPM's response. A command the
// TPM asks for again (see rcRetry) is sent again, a bounded number of
// times, with a growing pause: the TPM did not execute it, so sending the
// same bytes is what the specification asks for.
func (d *device) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for attempt := 1; ; attempt++ {
		rsp, err := d.send(cmd)
		if err != nil || len(rsp) < 10 || attempt > maxRetries {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case rcRetry, rcYielded, rcTesting:
			time.Sleep(time.Duration(attempt) * 5 * time.Millisecond)
		default:
			return rsp, nil
		}
	}
}

// send sends cmd once and reads the response.
func (d *device) send(cmd []byte) ([]byte, error) {
	if d.rw == nil {
		return nil, errors.New("tpm: closed")
	}
	if c, ok := d.rw.(net.Conn); ok {
		c.SetDeadline(time.Now().Add(commandTimeout))
	}
	if _, err := d.rw.Write(cmd); err != nil {
		return nil, fmt.Errorf("tpm: sending command: %w", err)
	}
	if !d.stream {
		buf := make([]byte, maxResponse)
		n, err := d.rw.Read(buf)
		if err != nil {
			return nil, fmt.Errorf("tpm: reading response: %w", err)
		}
		return buf[:n], nil
	}
	// tag (2 bytes), size (4 bytes, the whole response), response code.
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(d.rw, hdr); err != nil {
		return nil, fmt.Errorf("tpm: reading response: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > maxResponse {
		return nil, fmt.Errorf("tpm: response of %d bytes", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(d.rw, rsp[10:]); err != nil {
		return nil, fmt.Errorf("tpm: reading response: %w", err)
	}
	return rsp, nil
}

// Close closes the device or connection.
func (d *device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rw == nil {
		return errors.New("tpm: closed")
	}
	err := d.rw.Close()
	d.rw = nil
	return err
}
