package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/unroot/unroot/inventory"
	"github.com/unroot/unroot/migrate"
)

const p4Images = 5

func p4Name(i int) string { return fmt.Sprintf("unroot-bench/p4:%d", i) }

func docker(host string, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"-H", host}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker -H %s %s: %w: %s", host, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildP4Images commits 5 images on the source daemon, each the rig's
// busybox plus a distinct 5 MiB file, so they share the base layer.
func buildP4Images(r rig) error {
	for i := 0; i < p4Images; i++ {
		if _, err := docker(r.SourceHost, "image", "inspect", p4Name(i)); err == nil {
			continue
		}
		c := fmt.Sprintf("unroot-bench-p4-%d", i)
		_, _ = docker(r.SourceHost, "rm", "-f", c)
		if _, err := docker(r.SourceHost, "run", "--name", c, r.Image, "sh", "-c",
			fmt.Sprintf("head -c 5242880 /dev/urandom > /data-%d", i)); err != nil {
			return err
		}
		_, err := docker(r.SourceHost, "commit", c, p4Name(i))
		_, _ = docker(r.SourceHost, "rm", "-f", c)
		if err != nil {
			return err
		}
	}
	return nil
}

// clearTarget removes the bench images from the target daemon, so every run
// starts from the same target state.
func clearTarget(r rig, n int) {
	for i := 0; i < n; i++ {
		_, _ = docker(r.TargetHost, "rmi", "-f", p4Name(i))
	}
}

// p4 measures image transfer into the rootless daemon: all 5 images in one
// migrate.TransferImages stream vs 5 'docker save | docker load' pipes, and
// one image each way.
func p4(ctx context.Context, c *config, out io.Writer) ([]result, error) {
	r := c.rig
	if _, err := docker(r.SourceHost, "version"); err != nil {
		return nil, fmt.Errorf("source daemon: %w (run 'make testenv')", err)
	}
	if _, err := docker(r.TargetHost, "version"); err != nil {
		return nil, fmt.Errorf("target daemon: %w (run 'make testenv')", err)
	}
	if err := buildP4Images(r); err != nil {
		return nil, err
	}
	src, err := inventory.Dial(ctx, "source", r.SourceHost)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := inventory.Dial(ctx, "target", r.TargetHost)
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	refs := make([]migrate.ImageRef, p4Images)
	for i := range refs {
		ins, err := src.ImageInspect(ctx, p4Name(i))
		if err != nil {
			return nil, err
		}
		refs[i] = migrate.ImageRef{ID: ins.ID, Tags: []string{p4Name(i)}}
		if ins.Size != 0 {
			refs[i].Size = ins.Size
		}
	}
	fs := "docker: " + r.SourceHost + " → " + r.TargetHost
	var results []result
	for _, n := range []int{p4Images, 1} {
		res := result{ID: "P4", FS: "docker"}
		if n == 1 {
			res.Ours, res.Baseline, res.Goal, res.GoalText = "1 image, migrate.TransferImages", "1 × docker save X | docker load", 1.1, "≤ 1.1×"
		} else {
			res.Ours, res.Baseline, res.Goal, res.GoalText = "5 images, one TransferImages stream", "5 × docker save X | docker load", 0.7, "≤ 0.7×"
		}
		fmt.Fprintf(out, "-- P4 (%s): %s vs %s\n", fs, res.Ours, res.Baseline)
		for p := 0; p < c.pairs; p++ {
			clearTarget(r, p4Images)
			t0 := time.Now()
			if _, err := migrate.TransferImages(ctx, src, dst, refs[:n], nil); err != nil {
				return results, err
			}
			d := time.Since(t0)
			res.OursS = append(res.OursS, d.Seconds())
			fmt.Fprintf(out, "   ours %d: %.3fs\n", p+1, d.Seconds())
			clearTarget(r, p4Images)
			t0 = time.Now()
			for i := 0; i < n; i++ {
				cmd := fmt.Sprintf("docker -H %s save %s | docker -H %s load", r.SourceHost, p4Name(i), r.TargetHost)
				if err := sh(cmd); err != nil {
					return results, err
				}
			}
			d = time.Since(t0)
			res.BaseS = append(res.BaseS, d.Seconds())
			fmt.Fprintf(out, "   base %d: %.3fs\n", p+1, d.Seconds())
			if err := ctx.Err(); err != nil {
				return results, err
			}
		}
		clearTarget(r, p4Images)
		res.OursMed, res.BaseMed = median(res.OursS), median(res.BaseS)
		res.Ratio = res.OursMed / res.BaseMed
		res.Met = res.Ratio <= res.Goal
		results = append(results, res)
	}
	return results, nil
}
