package preflight

import (
	"context"
	"os/exec"

	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// InfoClient is the part of the Docker client the target checks use;
// *github.com/moby/moby/client.Client implements it.
type InfoClient interface {
	Info(ctx context.Context, opts client.InfoOptions) (client.SystemInfoResult, error)
}

// SourceClient is the part of the Docker client the source checks use: info,
// and the containers' published ports; *client.Client implements it.
type SourceClient interface {
	InfoClient
	ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, opts client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// Options say whom to check and where to look. Only User is required.
type Options struct {
	// User is the rootless target user, already resolved from the passwd
	// database by the caller.
	User User

	// SourceHost and TargetHost are the daemons' addresses, only used in
	// messages and fixes.
	SourceHost, TargetHost string

	// DialSource and DialTarget connect to the rootful and the rootless
	// daemon. A client that implements io.Closer is closed when Run is
	// done. A nil func, or one that fails, makes the daemon's checks fail
	// with what was returned.
	DialSource func(ctx context.Context) (SourceClient, error)
	DialTarget func(ctx context.Context) (InfoClient, error)

	// ProcRoot, EtcRoot, SysRoot, RunRoot, VarRoot, DevRoot and UsrRoot are
	// prefixed to the absolute paths read under /proc, /etc, /sys, /run,
	// /var, /dev and /usr; each defaults to "/" (the host). Tests point
	// them at a fake root.
	ProcRoot, EtcRoot, SysRoot, RunRoot, VarRoot, DevRoot, UsrRoot string

	// LookPath finds a program on the PATH; the default is [exec.LookPath].
	LookPath func(file string) (string, error)

	// FSType returns the filesystem magic of the filesystem holding path,
	// as statfs(2) reports it; the default calls statfs.
	FSType func(path string) (int64, error)

	// Getxattr returns the value of the extended attribute attr of path;
	// the default calls getxattr(2).
	Getxattr func(path, attr string) ([]byte, error)
}

func (o *Options) setDefaults() {
	for _, p := range []*string{&o.ProcRoot, &o.EtcRoot, &o.SysRoot, &o.RunRoot, &o.VarRoot, &o.DevRoot, &o.UsrRoot} {
		if *p == "" {
			*p = "/"
		}
	}
	if o.LookPath == nil {
		o.LookPath = exec.LookPath
	}
	if o.FSType == nil {
		o.FSType = statfsType
	}
	if o.Getxattr == nil {
		o.Getxattr = getxattr
	}
}

func statfsType(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Type), nil
}

func getxattr(path, attr string) ([]byte, error) {
	buf := make([]byte, 64)
	for {
		n, err := unix.Getxattr(path, attr, buf)
		if err == unix.ERANGE && len(buf) < 64*1024 {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
