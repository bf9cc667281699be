package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// fakeDaemon answers Info and the container calls from fixed values.
type fakeDaemon struct {
	info       system.Info
	err        error
	containers []container.Summary
	inspect    map[string]container.InspectResponse
}

func (d *fakeDaemon) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	if d.err != nil {
		return client.SystemInfoResult{}, d.err
	}
	return client.SystemInfoResult{Info: d.info}, nil
}

func (d *fakeDaemon) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{Items: d.containers}, nil
}

func (d *fakeDaemon) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	in, ok := d.inspect[id]
	if !ok {
		return client.ContainerInspectResult{}, fmt.Errorf("no such container %s", id)
	}
	return client.ContainerInspectResult{Container: in}, nil
}

// fakeHost is a healthy host in a temporary directory: every check passes
// unless a test case changes something (dev-net-tun passes only where the
// real /dev/net/tun is usable).
type fakeHost struct {
	t      *testing.T
	root   string
	user   User
	fstype int64
	xattrs map[string][]byte
	source *fakeDaemon
	target *fakeDaemon
	// dialErr, when set, is what dialling the daemon returns.
	sourceDialErr, targetDialErr error
}

// testUID is the fake user's uid: a directory can only be given to another
// uid by root, so non-root test runs use their own uid.
func testUID() int {
	if os.Getuid() == 0 {
		return 1000
	}
	return os.Getuid()
}

func newFakeHost(t *testing.T) *fakeHost {
	t.Helper()
	root := t.TempDir()
	uid := testUID()
	h := &fakeHost{
		t:      t,
		root:   root,
		user:   User{Name: "alice", UID: uid, GID: uid, Home: filepath.Join(root, "home/alice")},
		fstype: cgroup2SuperMagic,
		xattrs: map[string][]byte{},
		source: &fakeDaemon{info: system.Info{ServerVersion: "20.10.24", SecurityOptions: []string{"name=apparmor", "name=seccomp,profile=default"}}},
		target: &fakeDaemon{info: system.Info{ServerVersion: "20.10.24", Driver: "overlay2", CgroupDriver: "systemd",
			SecurityOptions: []string{"name=seccomp,profile=default", "name=rootless", "name=cgroupns"}}},
	}
	h.write("proc/sys/kernel/unprivileged_userns_clone", "1\n")
	h.write("proc/sys/user/max_user_namespaces", "63408\n")
	h.write("proc/sys/net/ipv4/ip_unprivileged_port_start", "80\n")
	h.write("proc/1/limits", string(readTestdata(t, "proc-limits")))
	h.write("etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nalice:x:%d:%d::/home/alice:/bin/sh\nbob:x:2000:2000::/home/bob:/bin/sh\n", uid, uid))
	h.write("etc/group", fmt.Sprintf("root:x:0:\nalice:x:%d:\ndocker:x:999:alice\nbob:x:2000:\n", uid))
	h.write("etc/subuid", "alice:231072:65536\nbob:296608:65536\n")
	h.write("etc/subgid", "alice:231072:65536\nbob:296608:65536\n")
	h.write("etc/security/limits.conf", "alice - nofile 1048576\n")
	for _, b := range []string{"newuidmap", "newgidmap", "rootlesskit", "dockerd-rootless.sh", "slirp4netns"} {
		h.write("bin/"+b, "#!/bin/sh\n")
	}
	// Given file capabilities, so the healthy host needs no root-owned
	// setuid file.
	h.xattrs[h.path("bin/newuidmap")] = []byte{0x01, 0, 0, 0x02, 1 << capSetuid, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	h.xattrs[h.path("bin/newgidmap")] = []byte{0x01, 0, 0, 0x02, 1 << capSetgid, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := os.MkdirAll(h.path("dev/net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/net/tun", h.path("dev/net/tun")); err != nil {
		t.Fatal(err)
	}
	h.write(fmt.Sprintf("sys/fs/cgroup/user.slice/user-%d.slice/user@%d.service/cgroup.controllers", uid, uid), "cpuset cpu io memory pids\n")
	h.write("var/lib/systemd/linger/alice", "")
	h.mkdirOwned(fmt.Sprintf("run/user/%d", uid), uid)
	if err := os.MkdirAll(h.user.Home, 0o700); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *fakeHost) path(rel string) string { return filepath.Join(h.root, rel) }

func (h *fakeHost) write(rel, content string) {
	h.t.Helper()
	p := h.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) remove(rel string) {
	h.t.Helper()
	if err := os.RemoveAll(h.path(rel)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *fakeHost) mkdirOwned(rel string, uid int) {
	h.t.Helper()
	if err := os.MkdirAll(h.path(rel), 0o700); err != nil {
		h.t.Fatal(err)
	}
	if uid != os.Getuid() {
		if err := os.Chown(h.path(rel), uid, uid); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *fakeHost) options() Options {
	return Options{
		User:       h.user,
		SourceHost: "unix:///fake/docker.sock",
		TargetHost: fmt.Sprintf("unix:///run/user/%d/docker.sock", h.user.UID),
		DialSource: func(context.Context) (SourceClient, error) {
			if h.sourceDialErr != nil {
				return nil, h.sourceDialErr
			}
			return h.source, nil
		},
		DialTarget: func(context.Context) (InfoClient, error) {
			if h.targetDialErr != nil {
				return nil, h.targetDialErr
			}
			return h.target, nil
		},
		ProcRoot: h.root, EtcRoot: h.root, SysRoot: h.root, RunRoot: h.root,
		VarRoot: h.root, DevRoot: h.root, UsrRoot: h.root,
		LookPath: func(file string) (string, error) {
			p := h.path("bin/" + file)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("%s: not found", file)
			}
			return p, nil
		},
		FSType: func(string) (int64, error) { return h.fstype, nil },
		Getxattr: func(path, attr string) ([]byte, error) {
			if b, ok := h.xattrs[path]; ok && attr == "security.capability" {
				return b, nil
			}
			return nil, errors.New("no data available")
		},
	}
}

func (h *fakeHost) run() Report { return Run(context.Background(), h.options()) }

func TestRunHealthyHost(t *testing.T) {
	h := newFakeHost(t)
	rep := h.run()
	if len(rep.Checks) != len(IDs()) {
		t.Fatalf("got %d checks, want %d", len(rep.Checks), len(IDs()))
	}
	tunUsable := true
	if f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0); err != nil {
		tunUsable = false
	} else {
		f.Close()
	}
	for i, c := range rep.Checks {
		if c.ID != IDs()[i] {
			t.Errorf("check %d is %q, want %q", i, c.ID, IDs()[i])
		}
		if c.ID == "dev-net-tun" && !tunUsable {
			continue
		}
		if c.Status != StatusOK {
			t.Errorf("%s: %s: %s (fix %q)", c.ID, c.Status, c.Found, c.Fix)
		}
		if c.Status == StatusOK && c.Fix != "" {
			t.Errorf("%s: ok with fix %q", c.ID, c.Fix)
		}
		if c.Title == "" || c.Found == "" {
			t.Errorf("%s: empty title or finding: %+v", c.ID, c)
		}
	}
	if got := rep.Facts.SubUIDs; len(got) != 1 || got[0] != (IDRange{231072, 65536}) {
		t.Errorf("facts subuids = %+v", got)
	}
	if rep.Facts.CgroupVersion != 2 || rep.Facts.UnprivilegedPortStart != 80 || rep.Facts.TargetStorageDriver != "overlay2" {
		t.Errorf("facts = %+v", rep.Facts)
	}
}

func TestRunChecks(t *testing.T) {
	uid := testUID()
	tests := []struct {
		name   string
		change func(h *fakeHost)
		id     string
		want   Status
		found  string // a substring of Found
		fix    string // a substring of Fix
	}{
		// userns
		{"userns clone disabled", func(h *fakeHost) { h.write("proc/sys/kernel/unprivileged_userns_clone", "0\n") },
			"userns", StatusFail, "unprivileged_userns_clone is 0", "sysctl -w kernel.unprivileged_userns_clone=1"},
		{"userns no clone knob", func(h *fakeHost) { h.remove("proc/sys/kernel/unprivileged_userns_clone") },
			"userns", StatusOK, "63408", ""},
		{"userns max zero", func(h *fakeHost) { h.write("proc/sys/user/max_user_namespaces", "0\n") },
			"userns", StatusFail, "max_user_namespaces is 0", "sysctl -w user.max_user_namespaces="},
		{"apparmor restricts userns, no profile", func(h *fakeHost) {
			h.write("proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1\n")
		}, "userns", StatusWarn, "apparmor_restrict_unprivileged_userns is 1", "flags=(unconfined)"},
		{"apparmor restricts userns, profile present", func(h *fakeHost) {
			h.write("proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1\n")
			h.write("etc/apparmor.d/"+strings.ReplaceAll(strings.TrimPrefix(h.path("bin/rootlesskit"), "/"), "/", "."), "")
		}, "userns", StatusOK, "apparmor restricts them", ""},
		{"apparmor does not restrict userns", func(h *fakeHost) {
			h.write("proc/sys/kernel/apparmor_restrict_unprivileged_userns", "0\n")
		}, "userns", StatusOK, "allowed", ""},
		// user
		{"user is root", func(h *fakeHost) { h.user.UID = 0 }, "user", StatusFail, "is root", ""},
		{"user home missing", func(h *fakeHost) { h.remove("home/alice") }, "user", StatusWarn, "does not exist", "install -d"},
		// subuid and subgid
		{"subuid file missing", func(h *fakeHost) { h.remove("etc/subuid") },
			"subuid", StatusFail, "/etc/subuid does not exist", "usermod --add-subuids 131072-196607 alice"},
		{"subuid no entry", func(h *fakeHost) { h.write("etc/subuid", "bob:100000:65536\n") },
			"subuid", StatusFail, "no entry for alice", "usermod --add-subuids 196608-262143 alice"},
		{"subuid too small", func(h *fakeHost) { h.write("etc/subuid", "alice:231072:1000\n") },
			"subuid", StatusFail, "231072:1000", "usermod --add-subuids 131072-195607 alice"},
		{"subuid by uid", func(h *fakeHost) { h.write("etc/subuid", fmt.Sprintf("%d:231072:65536\n", uid)) },
			"subuid", StatusOK, "231072:65536", ""},
		{"subuid two ranges add up", func(h *fakeHost) {
			h.write("etc/subuid", fmt.Sprintf("alice:231072:32768\n%d:400000:32768\n", uid))
		}, "subuid", StatusOK, "231072:32768, 400000:32768", ""},
		{"subuid malformed other line", func(h *fakeHost) { h.write("etc/subuid", "alice:231072:65536\nbob:x:1\n") },
			"subuid", StatusWarn, "line 2", ""},
		{"subgid missing entry", func(h *fakeHost) { h.write("etc/subgid", "bob:231072:65536\n") },
			"subgid", StatusFail, "no entry for alice", "usermod --add-subgids"},
		// subid-overlap
		{"overlap with another user", func(h *fakeHost) { h.write("etc/subuid", "alice:231072:65536\nbob:262144:65536\n") },
			"subid-overlap", StatusFail, "overlaps bob's 262144:65536 on line 2", "usermod --del-subuids 231072-296607 --add-subuids"},
		{"overlap in subgid", func(h *fakeHost) { h.write("etc/subgid", "bob:200000:65536\nalice:231072:65536\n") },
			"subid-overlap", StatusFail, "/etc/subgid line 2", "--del-subgids"},
		{"range holds the user's own uid", func(h *fakeHost) {
			h.write("etc/subuid", fmt.Sprintf("alice:%d:65536\n", uid))
		}, "subid-overlap", StatusFail, "contains the user's own uid", ""},
		{"the user's own lines overlap", func(h *fakeHost) {
			h.write("etc/subuid", fmt.Sprintf("alice:231072:65536\n%d:231072:65536\n", uid))
		}, "subid-overlap", StatusFail, "lines 1 and 2 of alice overlap", "sed -i -e '2d' /etc/subuid"},
		{"range holds an account", func(h *fakeHost) { h.write("etc/subuid", "alice:1500:65536\n") },
			"subid-overlap", StatusWarn, "bob (2000)", ""},
		// newuidmap
		{"newuidmap missing", func(h *fakeHost) { h.remove("bin/newuidmap") },
			"newuidmap", StatusFail, "newuidmap is not on the PATH", "apt-get install -y uidmap"},
		{"newuidmap without setuid or caps", func(h *fakeHost) { delete(h.xattrs, h.path("bin/newuidmap")) },
			"newuidmap", StatusFail, "neither setuid root nor given file capabilities", "setcap cap_setuid+ep"},
		{"newgidmap with the wrong cap", func(h *fakeHost) {
			h.xattrs[h.path("bin/newgidmap")] = h.xattrs[h.path("bin/newuidmap")]
		}, "newuidmap", StatusFail, "lack cap_setgid", "setcap cap_setgid+ep"},
		{"newuidmap cap not effective", func(h *fakeHost) { h.xattrs[h.path("bin/newuidmap")][0] = 0 },
			"newuidmap", StatusFail, "not effective", "setcap cap_setuid+ep"},
		{"newuidmap v3 cap of a namespace", func(h *fakeHost) {
			h.xattrs[h.path("bin/newuidmap")] = []byte{0x01, 0, 0, 0x03, 1 << capSetuid, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xe9, 0x03, 0, 0}
		}, "newuidmap", StatusFail, "namespace of uid 1001", ""},
		// helpers
		{"rootlesskit missing", func(h *fakeHost) { h.remove("bin/rootlesskit") },
			"rootlesskit", StatusFail, "not on the PATH", "apt-get install -y rootlesskit"},
		{"dockerd-rootless in contrib only", func(h *fakeHost) {
			h.remove("bin/dockerd-rootless.sh")
			h.write("usr/share/docker.io/contrib/dockerd-rootless.sh", "#!/bin/sh\n")
			h.write("usr/share/docker.io/contrib/dockerd-rootless-setuptool.sh", "#!/bin/sh\n")
		}, "dockerd-rootless", StatusWarn, "/usr/share/docker.io/contrib/dockerd-rootless.sh exists but is not on the PATH",
			"ln -s /usr/share/docker.io/contrib/dockerd-rootless.sh /usr/share/docker.io/contrib/dockerd-rootless-setuptool.sh /usr/local/bin/"},
		{"dockerd-rootless missing", func(h *fakeHost) { h.remove("bin/dockerd-rootless.sh") },
			"dockerd-rootless", StatusFail, "neither on the PATH", "docker-ce-rootless-extras"},
		{"pasta instead of slirp4netns", func(h *fakeHost) { h.remove("bin/slirp4netns"); h.write("bin/pasta", "") },
			"network-driver", StatusOK, "bin/pasta", ""},
		{"no network driver", func(h *fakeHost) { h.remove("bin/slirp4netns") },
			"network-driver", StatusFail, "neither slirp4netns nor pasta", "apt-get install -y slirp4netns"},
		// dev-net-tun
		{"tun missing", func(h *fakeHost) { h.remove("dev/net/tun") },
			"dev-net-tun", StatusFail, "missing", "mknod -m 666 /dev/net/tun c 10 200"},
		{"tun a regular file", func(h *fakeHost) { h.remove("dev/net/tun"); h.write("dev/net/tun", "") },
			"dev-net-tun", StatusFail, "not a character device", "mknod"},
		{"tun the wrong device", func(h *fakeHost) {
			h.remove("dev/net/tun")
			if err := os.Symlink("/dev/null", h.path("dev/net/tun")); err != nil {
				t.Fatal(err)
			}
		}, "dev-net-tun", StatusFail, "device 1,3", "mknod"},
		// cgroup
		{"cgroup v1", func(h *fakeHost) { h.fstype = tmpfsMagic },
			"cgroup", StatusWarn, "cgroup v1", "systemd.unified_cgroup_hierarchy=1"},
		{"cgroup v2 default delegation", func(h *fakeHost) {
			h.write(fmt.Sprintf("sys/fs/cgroup/user.slice/user-%d.slice/user@%d.service/cgroup.controllers", uid, uid), "memory pids\n")
		}, "cgroup", StatusWarn, "without cpu, --cpus will not be enforced", "Delegate=cpu cpuset io memory pids"},
		{"cgroup v2 nothing delegated", func(h *fakeHost) {
			h.write(fmt.Sprintf("sys/fs/cgroup/user.slice/user-%d.slice/user@%d.service/cgroup.controllers", uid, uid), "")
		}, "cgroup", StatusWarn, "delegated controllers: none; without cpu, memory, pids", "delegate.conf"},
		{"cgroup v2 user manager not running", func(h *fakeHost) { h.remove("sys/fs/cgroup/user.slice") },
			"cgroup", StatusWarn, "is not running", "loginctl enable-linger alice"},
		{"cgroup unknown filesystem", func(h *fakeHost) { h.fstype = 0xef53 },
			"cgroup", StatusWarn, "0xef53", ""},
		// linger and runtime dir
		{"linger off", func(h *fakeHost) { h.remove("var/lib/systemd/linger/alice") },
			"linger", StatusWarn, "linger is off for alice", "loginctl enable-linger alice"},
		{"runtime dir missing", func(h *fakeHost) { h.remove("run/user") },
			"runtime-dir", StatusFail, "does not exist", "loginctl enable-linger alice"},
		{"runtime dir not a dir", func(h *fakeHost) {
			h.remove(fmt.Sprintf("run/user/%d", uid))
			h.write(fmt.Sprintf("run/user/%d", uid), "")
		},
			"runtime-dir", StatusFail, "not a directory owned by alice", fmt.Sprintf("chown %d:%d /run/user/%d", uid, uid, uid)},
		// target daemon
		{"target down", func(h *fakeHost) { h.targetDialErr = errors.New("target daemon at x does not answer: cannot connect") },
			"target-daemon", StatusFail, "target daemon at x does not answer: cannot connect", "dockerd-rootless-setuptool.sh install"},
		{"target down, installed unit", func(h *fakeHost) {
			h.targetDialErr = errors.New("cannot connect")
			h.write("home/alice/.config/systemd/user/docker.service", "")
		}, "target-daemon", StatusFail, "cannot connect", "systemctl --user -M alice@ start docker"},
		{"target down leaves rootless unchecked", func(h *fakeHost) { h.targetDialErr = errors.New("cannot connect") },
			"target-rootless", StatusWarn, "not checked: the target daemon does not answer (see target-daemon)", ""},
		{"target info fails", func(h *fakeHost) { h.target.err = errors.New("boom") },
			"target-daemon", StatusFail, "docker info: boom", ""},
		{"target not rootless", func(h *fakeHost) { h.target.info.SecurityOptions = []string{"name=seccomp,profile=default"} },
			"target-rootless", StatusFail, "is not rootless", ""},
		{"target vfs", func(h *fakeHost) { h.target.info.Driver = "vfs" },
			"storage-driver", StatusWarn, "vfs", "fuse-overlayfs"},
		{"target fuse-overlayfs", func(h *fakeHost) { h.target.info.Driver = "fuse-overlayfs" },
			"storage-driver", StatusOK, "fuse-overlayfs", ""},
		{"target cgroup driver none", func(h *fakeHost) { h.target.info.CgroupDriver = "none" },
			"cgroup-driver", StatusWarn, `cgroup driver "none"`, "delegate.conf"},
		// limits
		{"nofile from a user rule", nil, "ulimit-nofile", StatusOK, "/etc/security/limits.conf line 1 ('alice - nofile 1048576')", ""},
		{"nofile user beats group beats default", func(h *fakeHost) {
			h.write("etc/security/limits.conf", "* soft nofile 1000000\n@docker soft nofile 2000000\n")
			h.write("etc/security/limits.d/10-alice.conf", "alice soft nofile 1024\n")
			h.write("etc/security/limits.d/20-all.conf", "* soft nofile 4000000\n")
		}, "ulimit-nofile", StatusWarn, "nofile is 1024 from /etc/security/limits.d/10-alice.conf line 1", "/etc/security/limits.d/90-unroot-alice-nofile.conf"},
		{"nofile from a group rule", func(h *fakeHost) {
			h.write("etc/security/limits.conf", "* soft nofile 1000\n@docker soft nofile 70000\n* soft nofile 2000\n")
		}, "ulimit-nofile", StatusOK, "70000 from /etc/security/limits.conf line 2", ""},
		{"nofile only a hard limit", func(h *fakeHost) { h.write("etc/security/limits.conf", "alice hard nofile 4096\n") },
			"ulimit-nofile", StatusWarn, "4096 from /etc/security/limits.conf line 1 ('alice hard nofile 4096'), a hard limit", ""},
		{"nofile unset", func(h *fakeHost) { h.remove("etc/security/limits.conf") },
			"ulimit-nofile", StatusWarn, "no nofile limit for alice", "printf 'alice soft nofile 1048576\\nalice hard nofile 1048576\\n'"},
		{"nofile from the running daemon", func(h *fakeHost) {
			h.write(fmt.Sprintf("run/user/%d/docker.pid", uid), "4242\n")
			h.write("proc/4242/limits", strings.Replace(string(readTestdata(t, "proc-limits")), "Max open files            1024 ",
				"Max open files            20000", 1))
		}, "ulimit-nofile", StatusWarn, "nofile is 20000 from the running rootless daemon (pid 4242", "LimitNOFILE=1048576"},
		{"nofile stale pid file", func(h *fakeHost) { h.write(fmt.Sprintf("run/user/%d/docker.pid", uid), "4242\n") },
			"ulimit-nofile", StatusOK, "limits.conf line 1", ""},
		{"nproc too low", func(h *fakeHost) { h.write("etc/security/limits.conf", "@docker - nproc 2048\n") },
			"ulimit-nproc", StatusWarn, "nproc is 2048 from /etc/security/limits.conf line 1", "alice soft nproc 65536"},
		{"nproc unlimited by gid range", func(h *fakeHost) { h.write("etc/security/limits.conf", "@900:1000 soft nproc unlimited\n") },
			"ulimit-nproc", StatusOK, "nproc is unlimited", ""},
		{"nproc inherited from pid 1", nil, "ulimit-nproc", StatusOK, "pid 1", ""},
		// ports
		{"ports start 1024, source publishes 80 and 443", func(h *fakeHost) {
			h.write("proc/sys/net/ipv4/ip_unprivileged_port_start", "1024\n")
			h.source.containers = []container.Summary{
				{ID: "a", Names: []string{"/web"}, State: "running", Ports: []container.PortSummary{{PrivatePort: 80, PublicPort: 80}, {PrivatePort: 8080, PublicPort: 8080}}},
				{ID: "b", Names: []string{"/proxy"}, State: "exited"},
			}
			h.source.inspect = map[string]container.InspectResponse{"b": {HostConfig: &container.HostConfig{
				PortBindings: network.PortMap{network.MustParsePort("443/tcp"): {{HostPort: "443"}}},
			}}}
		}, "unprivileged-ports", StatusWarn, "host ports 80 (web), 443 (proxy) need rewriting", "ip_unprivileged_port_start=80"},
		{"ports start 1024, nothing low published", func(h *fakeHost) {
			h.write("proc/sys/net/ipv4/ip_unprivileged_port_start", "1024\n")
			h.source.containers = []container.Summary{{ID: "a", State: "running", Ports: []container.PortSummary{{PrivatePort: 80, PublicPort: 8080}}}}
		}, "unprivileged-ports", StatusOK, "no source container publishes a host port below it", ""},
		{"ports start 1024, source down", func(h *fakeHost) {
			h.write("proc/sys/net/ipv4/ip_unprivileged_port_start", "1024\n")
			h.sourceDialErr = errors.New("cannot connect")
		}, "unprivileged-ports", StatusWarn, "reverse proxy", "sysctl -w net.ipv4.ip_unprivileged_port_start=80"},
		{"ports start 80", nil, "unprivileged-ports", StatusOK, "start at 80", ""},
		// source daemon
		{"source down", func(h *fakeHost) { h.sourceDialErr = errors.New("cannot connect") },
			"source-daemon", StatusFail, "cannot connect", "systemctl start docker"},
		{"source down leaves remap unchecked", func(h *fakeHost) { h.sourceDialErr = errors.New("cannot connect") },
			"source-userns-remap", StatusWarn, "not checked: the source daemon does not answer (see source-daemon)", ""},
		{"source rootless", func(h *fakeHost) { h.source.info.SecurityOptions = []string{"name=rootless"} },
			"source-daemon", StatusFail, "itself rootless", ""},
		{"source userns-remap", func(h *fakeHost) {
			h.source.info.SecurityOptions = []string{"name=seccomp,profile=default", "name=userns"}
		}, "source-userns-remap", StatusFail, "does not support", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			if tt.change != nil {
				tt.change(h)
			}
			rep := h.run()
			c, ok := rep.Check(tt.id)
			if !ok {
				t.Fatalf("no check %q", tt.id)
			}
			if c.Status != tt.want || !strings.Contains(c.Found, tt.found) || !strings.Contains(c.Fix, tt.fix) {
				t.Errorf("%s = %s %q (fix %q), want %s with %q (fix with %q)", tt.id, c.Status, c.Found, c.Fix, tt.want, tt.found, tt.fix)
			}
			if c.Status == StatusOK && c.Fix != "" {
				t.Errorf("ok with fix %q", c.Fix)
			}
			if rep.Failed() != (rep.Summary.Fail > 0) || rep.Summary.OK+rep.Summary.Warn+rep.Summary.Fail != len(IDs()) {
				t.Errorf("summary %+v does not add up", rep.Summary)
			}
		})
	}
}

// TestCheckDevNetTunModes needs a real tun device node, which only root can
// make.
func TestCheckDevNetTunModes(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mknod needs root")
	}
	uid := testUID()
	tests := []struct {
		name     string
		mode     uint32
		uid, gid int
		want     Status
		found    string
	}{
		{"root only", 0o600, 0, 0, StatusWarn, "alice cannot open it"},
		{"world", 0o666, 0, 0, StatusOK, "opens"},
		{"owned by the user", 0o600, uid, 0, StatusOK, "opens"},
		{"a group of the user", 0o660, 0, 999, StatusOK, "opens"},
		{"another group", 0o660, 0, 2000, StatusWarn, "mode 0660"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			p := h.path("dev/net/tun")
			h.remove("dev/net/tun")
			if err := unix.Mknod(p, unix.S_IFCHR|tt.mode, int(unix.Mkdev(10, 200))); err != nil {
				t.Skipf("mknod: %v", err)
			}
			if err := os.Chmod(p, os.FileMode(tt.mode)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, tt.uid, tt.gid); err != nil {
				t.Fatal(err)
			}
			c, _ := h.run().Check("dev-net-tun")
			if err := unix.Access(p, unix.R_OK|unix.W_OK); err == nil && c.Status == StatusFail && strings.Contains(c.Found, "cannot be opened") {
				t.Skipf("the tun driver is not usable here: %s", c.Found)
			}
			if c.Status != tt.want || !strings.Contains(c.Found, tt.found) {
				t.Errorf("dev-net-tun = %s %q, want %s with %q", c.Status, c.Found, tt.want, tt.found)
			}
		})
	}
}

// TestCheckNewuidmapSetuidRoot needs a root-owned setuid file.
func TestCheckNewuidmapSetuidRoot(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("a root-owned setuid file needs root")
	}
	for _, tt := range []struct {
		name string
		mode os.FileMode
		uid  int
		want Status
	}{
		{"setuid root", 0o755 | os.ModeSetuid, 0, StatusOK},
		{"setuid another user", 0o755 | os.ModeSetuid, 1234, StatusFail},
		{"plain", 0o755, 0, StatusFail},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			for _, b := range []string{"newuidmap", "newgidmap"} {
				delete(h.xattrs, h.path("bin/"+b))
				if err := os.Chown(h.path("bin/"+b), tt.uid, 0); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(h.path("bin/"+b), tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			c, _ := h.run().Check("newuidmap")
			if c.Status != tt.want {
				t.Errorf("newuidmap = %s %q, want %s", c.Status, c.Found, tt.want)
			}
			if tt.want == StatusOK && !strings.Contains(c.Found, "newgidmap is setuid root") {
				t.Errorf("finding %q does not cover newgidmap", c.Found)
			}
		})
	}
}
