package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/sys/user"
	"github.com/spf13/cobra"
)

const (
	defaultSourceHost = "unix:///var/run/docker.sock"
	defaultStateDir   = "/var/lib/unroot"
)

// globalOptions are the flags every verb understands.
type globalOptions struct {
	user       string
	sourceHost string
	targetHost string
	stateDir   string
}

func (g *globalOptions) register(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVar(&g.user, "user", "", "the rootless target user (NAME or UID)")
	pf.StringVar(&g.sourceHost, "source-host", "", "the rootful daemon (default $DOCKER_HOST, else the docker CLI's current\ncontext if not \"default\" ($DOCKER_CONTEXT or 'docker context use'), else\n"+defaultSourceHost+"; as 'docker unroot', docker's -H and --context)")
	pf.StringVar(&g.targetHost, "target-host", "", "the rootless daemon (default unix:///run/user/UID/docker.sock for --user)")
	pf.StringVar(&g.stateDir, "state-dir", defaultStateDir, "where unroot keeps journals and state")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if localCommand(cmd) {
			return nil
		}
		return g.checkSource()
	}
}

// source returns the rootful daemon address: --source-host, else what the
// docker CLI would use (DOCKER_HOST, else a non-default docker context, else
// the default socket). A context that cannot be resolved has already failed
// the command in [globalOptions.checkSource].
func (g *globalOptions) source() string {
	if g.sourceHost != "" {
		return g.sourceHost
	}
	ep, err := resolveDockerEndpoint(os.Getenv)
	if err != nil {
		return defaultSourceHost
	}
	return ep.Host
}

// checkSource fails when the source daemon would come from a docker context
// that cannot be read, rather than silently using the default socket.
func (g *globalOptions) checkSource() error {
	if g.sourceHost != "" {
		return nil
	}
	_, err := resolveDockerEndpoint(os.Getenv)
	return err
}

// targetUser is the resolved rootless target user.
type targetUser struct {
	Name string
	UID  int
	GID  int
	Home string
}

// runtimeDir is the user's XDG_RUNTIME_DIR as rootless docker uses it.
func (u targetUser) runtimeDir() string { return fmt.Sprintf("/run/user/%d", u.UID) }

// requireUser resolves --user, failing with a usage error when it is missing.
func (g *globalOptions) requireUser() (targetUser, error) {
	if g.user == "" {
		return targetUser{}, usageErr("name the rootless target user, e.g. --user alice", "--user is required")
	}
	return lookupUser(g.user)
}

// requireTargetUser resolves --user for verbs that move or shift things: the
// target must be an unprivileged user, never root.
func (g *globalOptions) requireTargetUser() (targetUser, error) {
	u, err := g.requireUser()
	if err != nil {
		return u, err
	}
	if u.UID == 0 {
		return u, usageErr("create a dedicated user (e.g. 'useradd -m dockeruser') with a subordinate id range, and check it with 'unroot check --user dockeruser'",
			"--user %s is root: the target must be an unprivileged user", g.user)
	}
	return u, nil
}

// requireRoot fails unless unroot runs as root: verbs that read the rootful
// daemon's volumes or change file ownership need it.
func requireRoot(verb string) error {
	if os.Geteuid() != 0 {
		return failErr(fmt.Errorf("unroot %s must run as root: it reads the rootful daemon's volumes and changes file ownership", verb),
			"run it as root, e.g. 'sudo unroot "+verb+" ...'")
	}
	return nil
}

// lookupUser resolves a user NAME or numeric UID from the host's passwd database.
func lookupUser(spec string) (targetUser, error) {
	var (
		u   user.User
		err error
	)
	if n, perr := strconv.Atoi(spec); perr == nil {
		u, err = user.LookupUid(n)
	} else {
		u, err = user.LookupUser(spec)
	}
	if err != nil {
		return targetUser{}, failErr(fmt.Errorf("user %q not found on this host", spec),
			"create it first, e.g. 'useradd -m "+strings.TrimSpace(spec)+"', then give it subordinate ids in /etc/subuid and /etc/subgid")
	}
	return targetUser{Name: u.Name, UID: u.Uid, GID: u.Gid, Home: u.Home}, nil
}

// target returns the rootless daemon address for u.
func (g *globalOptions) target(u targetUser) string {
	if g.targetHost != "" {
		return g.targetHost
	}
	return "unix://" + u.runtimeDir() + "/docker.sock"
}

// addFormatFlag adds --format to a verb that prints data.
func addFormatFlag(c *cobra.Command, p *string, allowed ...string) {
	if len(allowed) == 0 {
		allowed = []string{"text", "json"}
	}
	c.Flags().StringVar(p, "format", "text", "output format: "+strings.Join(allowed, "|"))
	orig := c.PreRunE
	c.PreRunE = func(cmd *cobra.Command, args []string) error {
		ok := false
		for _, a := range allowed {
			ok = ok || *p == a
		}
		if !ok {
			return usageErr("use one of: "+strings.Join(allowed, ", "), "unknown --format %q", *p)
		}
		if orig != nil {
			return orig(cmd, args)
		}
		return nil
	}
}
