package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// DaemonError says that a daemon could not be reached; its Hint names a fix.
type DaemonError struct {
	Role string // "source" or "target"
	Host string
	Err  error
}

func (e *DaemonError) Error() string {
	return fmt.Sprintf("%s daemon at %s does not answer: %v", e.Role, e.Host, e.Err)
}

func (e *DaemonError) Unwrap() error { return e.Err }

// Hint tells the user how to bring the daemon up or point unroot at it.
func (e *DaemonError) Hint() string {
	if e.Role == "target" {
		return "start the rootless daemon as the target user (dockerd-rootless.sh, or 'systemctl --user start docker'), or pass --target-host"
	}
	return "start the rootful daemon ('systemctl start docker' or 'dockerd'), or pass --source-host / set DOCKER_HOST"
}

// ErrDaemonUnreachable is matched by errors.Is for every [DaemonError].
var ErrDaemonUnreachable = errors.New("daemon unreachable")

// Is lets callers branch on [ErrDaemonUnreachable].
func (e *DaemonError) Is(target error) bool { return target == ErrDaemonUnreachable }

// Dial connects to the daemon at host and negotiates the API version (v0.6.3
// negotiates by default; the explicit ping makes a failure surface) with a
// ping, so that a daemon that does not answer fails here rather than on the
// first real call. role ("source" or "target") only shapes error messages.
func Dial(ctx context.Context, role, host string) (*client.Client, error) {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return nil, &DaemonError{Role: role, Host: host, Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, &DaemonError{Role: role, Host: host, Err: trimDaemonErr(err)}
	}
	return c, nil
}

// trimDaemonErr drops the client library's long boilerplate from
// connection errors so the message fits on a line.
func trimDaemonErr(err error) error {
	msg := err.Error()
	// Old clients say "Cannot connect to the Docker daemon ...", v0.6.3
	// "failed to connect to the docker API at ...; check if the path is
	// correct and if the daemon is running: dial unix ...: <cause>". Keep
	// only the cause: the host is already in DaemonError's message.
	if strings.Contains(msg, "Cannot connect to the Docker daemon") || strings.Contains(msg, "failed to connect to the docker API") {
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			return errors.New("cannot connect: " + msg[i+2:])
		}
		return errors.New("cannot connect")
	}
	return err
}
