package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// p5Cmd exits on SIGTERM at once, so neither side waits out docker
	// stop's 10 s timeout (busybox sleep as pid 1 ignores SIGTERM).
	p5Cmd = `trap "exit 0" TERM; sleep 100000 & wait`
	p5Ctr = "unroot-bench-p5"
	p5Vol = "unroot-bench-p5-data"
)

// p5Reset removes the service from the target and starts a fresh source
// container on the (kept) source volume.
func p5Reset(r rig) error {
	_, _ = docker(r.TargetHost, "rm", "-f", p5Ctr)
	_, _ = docker(r.TargetHost, "volume", "rm", "-f", p5Vol)
	_, _ = docker(r.TargetHost, "rmi", "unroot/commit:"+p5Ctr)
	_, _ = docker(r.SourceHost, "rm", "-f", p5Ctr)
	_, err := docker(r.SourceHost, "run", "-d", "--name", p5Ctr, "-v", p5Vol+":/data", r.Image, "sh", "-c", p5Cmd)
	return err
}

// p5Volume makes the 1 GiB source volume once: 16 × 64 MiB of random data
// plus 1000 small files of mixed owners.
func p5Volume(r rig, mib int) error {
	if out, err := docker(r.SourceHost, "volume", "inspect", "-f", "{{index .Labels \"unroot-bench-mib\"}}", p5Vol); err == nil && out == fmt.Sprint(mib) {
		return nil
	}
	_, _ = docker(r.SourceHost, "rm", "-f", p5Ctr)
	_, _ = docker(r.SourceHost, "volume", "rm", "-f", p5Vol)
	if _, err := docker(r.SourceHost, "volume", "create", "--label", fmt.Sprintf("unroot-bench-mib=%d", mib), p5Vol); err != nil {
		return err
	}
	n := mib / 64
	script := fmt.Sprintf(`set -e; for i in $(seq 1 %d); do head -c 67108864 /dev/urandom > /data/big$i; done; chown 999:999 /data/big*;
mkdir -p /data/small; for i in $(seq 1 1000); do echo $i > /data/small/f$i; done; chown -R 33:33 /data/small`, n)
	_, err := docker(r.SourceHost, "run", "--rm", "-v", p5Vol+":/data", r.Image, "sh", "-c", script)
	return err
}

// p5 measures the downtime of a one-container service with a 1 GiB volume:
// 'unroot migrate --yes' vs the naive sequence by hand: docker stop; cp -a
// into the target volume; chown -R; docker run on the target. Both are
// measured by [p5Gap]; migrate's own record (which includes its health gate)
// is printed beside it.
func p5(ctx context.Context, c *config, out io.Writer) ([]result, error) {
	r := c.rig
	if _, err := os.Stat(c.unroot); err != nil {
		return nil, fmt.Errorf("%s: %w (make build)", c.unroot, err)
	}
	if err := p5Volume(r, c.p5MiB); err != nil {
		return nil, err
	}
	// The naive path needs the image in the target; load it once, untimed.
	if _, err := docker(r.TargetHost, "image", "inspect", r.Image); err != nil {
		if err := sh(fmt.Sprintf("docker -H %s save %s | docker -H %s load", r.SourceHost, r.Image, r.TargetHost)); err != nil {
			return nil, err
		}
	}
	defer func() {
		_, _ = docker(r.TargetHost, "rm", "-f", p5Ctr)
		_, _ = docker(r.TargetHost, "volume", "rm", "-f", p5Vol)
		_, _ = docker(r.TargetHost, "rmi", "unroot/commit:"+p5Ctr)
		_, _ = docker(r.SourceHost, "rm", "-f", p5Ctr)
	}()
	res := result{ID: "P5", Ours: "unroot migrate --yes (downtime)", Baseline: "stop; cp -a; chown -R; run", FS: "docker",
		Goal: 0.1, GoalText: "≤ 0.1×", Note: fmt.Sprintf("%d MiB volume; downtime = source State.FinishedAt → target State.StartedAt, both sides", c.p5MiB)}
	fmt.Fprintf(out, "-- P5: %s vs %s, %d MiB volume\n", res.Ours, res.Baseline, c.p5MiB)
	for p := 0; p < c.pairs; p++ {
		if err := p5Reset(r); err != nil {
			return nil, err
		}
		state, err := os.MkdirTemp("", "unroot-bench-p5-state-")
		if err != nil {
			return nil, err
		}
		args := []string{"--user", r.User, "--source-host", r.SourceHost, "--target-host", r.TargetHost, "--state-dir", state, "migrate", "--yes", p5Ctr}
		t0 := time.Now()
		cmdOut, err := exec.CommandContext(ctx, c.unroot, args...).CombinedOutput()
		wall := time.Since(t0)
		if err != nil {
			os.RemoveAll(state)
			return nil, fmt.Errorf("unroot %s: %w\n%s", strings.Join(args, " "), err, cmdOut)
		}
		st, err := exec.CommandContext(ctx, c.unroot, "--user", r.User, "--source-host", r.SourceHost, "--target-host", r.TargetHost, "--state-dir", state, "status", "--format", "json").Output()
		os.RemoveAll(state)
		if err != nil {
			return nil, fmt.Errorf("unroot status: %w", err)
		}
		var s struct {
			Services map[string]struct {
				DowntimeMS int64 `json:"downtime_ms"`
			} `json:"services"`
		}
		if err := json.Unmarshal(st, &s); err != nil {
			return nil, fmt.Errorf("unroot status json: %w", err)
		}
		recorded := time.Duration(s.Services[p5Ctr].DowntimeMS) * time.Millisecond
		d, err := p5Gap(r)
		if err != nil {
			return nil, err
		}
		res.OursS = append(res.OursS, d.Seconds())
		fmt.Fprintf(out, "   ours %d: downtime %.3fs (migrate recorded %.3fs with its health gate; whole migrate %.3fs)\n", p+1, d.Seconds(), recorded.Seconds(), wall.Seconds())

		if err := p5Reset(r); err != nil {
			return nil, err
		}
		if err := p5Naive(r); err != nil {
			return nil, err
		}
		d, err = p5Gap(r)
		if err != nil {
			return nil, err
		}
		res.BaseS = append(res.BaseS, d.Seconds())
		fmt.Fprintf(out, "   base %d: downtime %.3fs\n", p+1, d.Seconds())
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	res.OursMed, res.BaseMed = median(res.OursS), median(res.BaseS)
	res.Ratio = res.OursMed / res.BaseMed
	res.Met = res.Ratio <= res.Goal
	return []result{res}, nil
}

// p5Naive is what an admin types: stop, copy, chown to the user's first
// subordinate id, run on the rootless daemon. Timed from the stop to the
// target container running.
func p5Naive(r rig) error {
	src, err := docker(r.SourceHost, "volume", "inspect", "-f", "{{.Mountpoint}}", p5Vol)
	if err != nil {
		return err
	}
	if _, err := docker(r.SourceHost, "stop", p5Ctr); err != nil {
		return err
	}
	if _, err := docker(r.TargetHost, "volume", "create", p5Vol); err != nil {
		return err
	}
	dst, err := docker(r.TargetHost, "volume", "inspect", "-f", "{{.Mountpoint}}", p5Vol)
	if err != nil {
		return err
	}
	owner := fmt.Sprintf("%d:%d", r.SubStart, r.SubStart)
	if err := sh(fmt.Sprintf("cp -a %q/. %q/ && chown -R %s %q", src, dst, owner, filepath.Clean(dst))); err != nil {
		return err
	}
	_, err = docker(r.TargetHost, "run", "-d", "--name", p5Ctr, "-v", p5Vol+":/data", r.Image, "sh", "-c", p5Cmd)
	return err
}

// p5Gap is the downtime both ways measure the same: from the source
// container's State.FinishedAt to the target container's State.StartedAt
// (both daemons run on this host's clock).
func p5Gap(r rig) (time.Duration, error) {
	stop, err := docker(r.SourceHost, "inspect", "-f", "{{.State.FinishedAt}}", p5Ctr)
	if err != nil {
		return 0, err
	}
	start, err := docker(r.TargetHost, "inspect", "-f", "{{.State.StartedAt}}", p5Ctr)
	if err != nil {
		return 0, err
	}
	a, err := time.Parse(time.RFC3339Nano, stop)
	if err != nil {
		return 0, fmt.Errorf("source FinishedAt %q: %w", stop, err)
	}
	b, err := time.Parse(time.RFC3339Nano, start)
	if err != nil {
		return 0, fmt.Errorf("target StartedAt %q: %w", start, err)
	}
	if !b.After(a) {
		return 0, fmt.Errorf("target started (%s) before the source stopped (%s)", start, stop)
	}
	return b.Sub(a), nil
}
