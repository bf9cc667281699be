package preflight

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"
)

// checkDef is one check: its stable id, its title and how it runs.
type checkDef struct {
	id, title string
	run       func(*runner) Check
}

// checks are run in this order, the order of the pre-production checklist:
// kernel, ids, helpers, cgroups and session, the rootless daemon, limits
// and ports, the rootful daemon.
var checks = []checkDef{
	{"userns", "unprivileged user namespaces", (*runner).checkUserns},
	{"user", "target user", (*runner).checkUser},
	{"subuid", "subordinate uids", (*runner).checkSubUID},
	{"subgid", "subordinate gids", (*runner).checkSubGID},
	{"subid-overlap", "subordinate ranges do not overlap", (*runner).checkSubIDOverlap},
	{"newuidmap", "newuidmap and newgidmap", (*runner).checkNewuidmap},
	{"rootlesskit", "rootlesskit", (*runner).checkRootlesskit},
	{"dockerd-rootless", "dockerd-rootless.sh", (*runner).checkDockerdRootless},
	{"network-driver", "slirp4netns or pasta", (*runner).checkNetworkDriver},
	{"dev-net-tun", "/dev/net/tun", (*runner).checkDevNetTun},
	{"cgroup", "cgroup v2 and delegation", (*runner).checkCgroup},
	{"linger", "linger", (*runner).checkLinger},
	{"runtime-dir", "XDG_RUNTIME_DIR", (*runner).checkRuntimeDir},
	{"target-daemon", "rootless daemon answers", (*runner).checkTargetDaemon},
	{"target-rootless", "target daemon is rootless", (*runner).checkTargetRootless},
	{"storage-driver", "target storage driver", (*runner).checkStorageDriver},
	{"cgroup-driver", "target cgroup driver", (*runner).checkCgroupDriver},
	{"ulimit-nofile", "open files limit", (*runner).checkUlimitNofile},
	{"ulimit-nproc", "process limit", (*runner).checkUlimitNproc},
	{"unprivileged-ports", "unprivileged port start", (*runner).checkUnprivilegedPorts},
	{"source-daemon", "rootful daemon answers", (*runner).checkSourceDaemon},
	{"source-userns-remap", "rootful daemon without userns-remap", (*runner).checkSourceUsernsRemap},
}

// IDs returns the id of every check [Run] performs, in report order.
func IDs() []string {
	ids := make([]string, len(checks))
	for i, c := range checks {
		ids[i] = c.id
	}
	return ids
}

// Run performs every check for opts.User and reports them in a fixed order
// (see [IDs]). It only reads the host and asks the daemons for information;
// it never changes anything. A check that cannot read what it needs reports
// that as its finding rather than stopping the others.
func Run(ctx context.Context, opts Options) Report {
	opts.setDefaults()
	r := &runner{ctx: ctx, o: opts}
	r.facts.UnprivilegedPortStart = -1
	defer r.close()
	rep := Report{User: opts.User}
	for _, c := range checks {
		ch := c.run(r)
		ch.ID, ch.Title = c.id, c.title
		if ch.Status == StatusOK {
			ch.Fix = ""
		}
		rep.Checks = append(rep.Checks, ch)
	}
	rep.Summary = summarize(rep.Checks)
	rep.Facts = r.facts
	return rep
}

// daemonTimeout bounds what the checks ask of one daemon, so a daemon that
// accepts connections but hangs cannot hang the checklist.
const daemonTimeout = time.Minute

// runner holds what several checks share, computed once on first use.
type runner struct {
	ctx   context.Context
	o     Options
	facts Facts

	subuid, subgid *subIDFile

	targetDone bool
	target     client.SystemInfoResult
	targetErr  error

	sourceDone  bool
	source      client.SystemInfoResult
	sourceErr   error
	sourcePorts []hostPort
	portsErr    error

	closers []io.Closer
}

func (r *runner) close() {
	for _, c := range r.closers {
		c.Close()
	}
}

func (r *runner) proc(p string) string { return filepath.Join(r.o.ProcRoot, "proc", p) }
func (r *runner) etc(p string) string  { return filepath.Join(r.o.EtcRoot, "etc", p) }
func (r *runner) sys(p string) string  { return filepath.Join(r.o.SysRoot, "sys", p) }
func (r *runner) run(p string) string  { return filepath.Join(r.o.RunRoot, "run", p) }
func (r *runner) vr(p string) string   { return filepath.Join(r.o.VarRoot, "var", p) }
func (r *runner) dev(p string) string  { return filepath.Join(r.o.DevRoot, "dev", p) }
func (r *runner) usr(p string) string  { return filepath.Join(r.o.UsrRoot, "usr", p) }

// runtimeDir is the user's XDG_RUNTIME_DIR on the host (not under RunRoot).
func (r *runner) runtimeDir() string { return fmt.Sprintf("/run/user/%d", r.o.User.UID) }

// targetInfo dials the rootless daemon and asks for its info, once.
func (r *runner) targetInfo() (client.SystemInfoResult, error) {
	if r.targetDone {
		return r.target, r.targetErr
	}
	r.targetDone = true
	if r.o.DialTarget == nil {
		r.targetErr = fmt.Errorf("no target daemon configured")
		return r.target, r.targetErr
	}
	c, err := r.o.DialTarget(r.ctx)
	if err != nil {
		r.targetErr = err
		return r.target, err
	}
	if cl, ok := c.(io.Closer); ok {
		r.closers = append(r.closers, cl)
	}
	ctx, cancel := context.WithTimeout(r.ctx, daemonTimeout)
	defer cancel()
	r.target, r.targetErr = c.Info(ctx, client.InfoOptions{})
	if r.targetErr != nil {
		r.targetErr = fmt.Errorf("docker info: %w", r.targetErr)
	}
	return r.target, r.targetErr
}

// sourceInfo dials the rootful daemon and asks for its info and the host
// ports its containers publish, once.
func (r *runner) sourceInfo() (client.SystemInfoResult, error) {
	if r.sourceDone {
		return r.source, r.sourceErr
	}
	r.sourceDone = true
	if r.o.DialSource == nil {
		r.sourceErr = fmt.Errorf("no source daemon configured")
		r.portsErr = r.sourceErr
		return r.source, r.sourceErr
	}
	c, err := r.o.DialSource(r.ctx)
	if err != nil {
		r.sourceErr, r.portsErr = err, err
		return r.source, err
	}
	if cl, ok := c.(io.Closer); ok {
		r.closers = append(r.closers, cl)
	}
	ctx, cancel := context.WithTimeout(r.ctx, daemonTimeout)
	defer cancel()
	r.source, r.sourceErr = c.Info(ctx, client.InfoOptions{})
	if r.sourceErr != nil {
		r.sourceErr = fmt.Errorf("docker info: %w", r.sourceErr)
		r.portsErr = r.sourceErr
		return r.source, r.sourceErr
	}
	r.sourcePorts, r.portsErr = publishedPorts(ctx, c)
	return r.source, nil
}
