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

// Send sends one command and returns the TPM's response.
func (d *device) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
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
