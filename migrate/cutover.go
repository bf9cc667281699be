package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"

	"github.com/unroot/unroot/inventory"
)

// CommitRepo is the repository of images committed from a stopped source
// container to keep its writable layer ("unroot/commit:<container>").
const CommitRepo = "unroot/commit"

// cutover moves one unit: image transfer and volume pre-sync while the
// sources run, then stop, commit, final sync, create, start and the health
// gate. A failure after the first change rolls the unit back.
func (a *applier) cutover(ctx context.Context, unit []*Service) (err error) {
	step := "prepare"
	names := make([]string, len(unit))
	for i, s := range unit {
		names[i] = s.Container
	}
	defer func() {
		if err == nil {
			return
		}
		ce := &CutoverError{Container: strings.Join(names, ", "), Step: step, Err: err}
		for _, n := range names {
			if ss := a.st.Service(n); ss != nil {
				ss.Error = fmt.Sprintf("%s: %v", step, err)
			}
		}
		a.logf("%s: %s failed: %v; rolling back", ce.Container, step, err)
		// The rollback must run even when ctx was cancelled (Ctrl-C).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		if rerr := rollbackServices(rctx, a.rollbackEnv(), names, false); rerr != nil {
			ce.RollbackErr = rerr
			for _, n := range names {
				if ss := a.st.Service(n); ss != nil {
					ss.Phase = PhaseFailed
				}
			}
			_ = a.st.Save()
		} else {
			ce.RolledBack = true
			a.logf("%s: rolled back; the source runs as before", ce.Container)
		}
		err = ce
	}()

	for _, s := range unit {
		if ss := a.st.Service(s.Container); ss != nil && ss.Phase == PhaseFailed {
			return &IncompleteRollbackError{Container: s.Container, Err: ss.Error}
		}
	}
	states := make([]*ServiceState, len(unit))
	for i, s := range unit {
		ss := a.st.Service(s.Container)
		if ss == nil || ss.Phase == PhaseRolledBack {
			c, cerr := a.inv.Container(s.Container)
			if cerr != nil {
				return cerr
			}
			fresh := &ServiceState{
				Container: s.Container, SourceID: s.ID, Phase: PhasePlanned, SourceWasRunning: s.Running,
				RestartPolicy: c.RestartPolicy, Ports: s.Ports, Volumes: s.Volumes, Binds: s.Binds,
				Image: s.Image, Started: time.Now().UTC(),
			}
			ss = fresh
			a.st.Services[s.Container] = ss
		} else {
			a.logf("%s: resuming from phase %s", s.Container, ss.Phase)
		}
		ss.Error = ""
		states[i] = ss
	}
	if err := a.save(); err != nil {
		return err
	}

	step = "image transfer"
	if err := a.transferImages(ctx, unit); err != nil {
		return err
	}
	a.advance(states, PhaseImageTransferred)

	step = "volume pre-sync"
	vols, binds := unitMounts(unit)
	var vstates []*VolumeState
	for _, v := range vols {
		vs, err := a.ensureVolume(ctx, v)
		if err != nil {
			return err
		}
		if err := a.checkMove(vs); err != nil {
			return err
		}
		vstates = append(vstates, vs)
	}
	for _, vs := range vstates {
		if err := a.presync(ctx, vs); err != nil {
			return err
		}
	}
	a.advance(states, PhasePresynced)
	if err := a.save(); err != nil {
		return err
	}
	// Write the pre-synced data back to disk while the service still runs:
	// left dirty, it is flushed inside the downtime window, where every
	// fsync of the daemons' stop and start waits behind it.
	a.flushTargets(vstates)

	step = "stop source"
	for i := len(unit) - 1; i >= 0; i-- {
		if err := a.stopSource(ctx, unit[i], states[i]); err != nil {
			return err
		}
	}
	a.advance(states, PhaseSourceStopped)
	if err := a.save(); err != nil {
		return err
	}

	step = "commit writable layer"
	for i, s := range unit {
		if err := a.commit(ctx, s, states[i]); err != nil {
			return err
		}
	}

	step = "final sync"
	for _, vs := range vstates {
		if err := a.finalSync(ctx, vs); err != nil {
			return err
		}
	}
	for _, b := range binds {
		if err := a.shiftBind(ctx, b); err != nil {
			return err
		}
	}
	a.advance(states, PhaseSynced)
	if err := a.save(); err != nil {
		return err
	}

	step = "create target"
	for i, s := range unit {
		if err := a.createTarget(ctx, s, states[i]); err != nil {
			return err
		}
	}

	step = "start target"
	for i, s := range unit {
		if !states[i].SourceWasRunning {
			continue
		}
		if _, err := a.o.Target.ContainerStart(ctx, states[i].TargetID, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("start %s in target: %w", s.Container, err)
		}
		a.logf("%s: target started", s.Container)
	}
	a.advance(states, PhaseTargetStarted)
	if err := a.save(); err != nil {
		return err
	}

	step = "health gate"
	for i, s := range unit {
		if !states[i].SourceWasRunning {
			continue
		}
		if err := a.healthGate(ctx, s, states[i]); err != nil {
			return err
		}
	}

	step = "finish"
	for i, s := range unit {
		ss := states[i]
		if err := a.disableSourceRestart(ctx, ss); err != nil {
			return err
		}
		now := time.Now().UTC()
		ss.HealthyAt, ss.Finished = now, now
		if ss.SourceWasRunning && !ss.StoppedAt.IsZero() {
			ss.DowntimeMS = now.Sub(ss.StoppedAt).Milliseconds()
		}
		ss.Phase = PhaseDone
		if ss.SourceWasRunning {
			a.logf("%s: migrated; downtime %s%s", s.Container, ss.Downtime().Round(time.Millisecond), portsLine(ss.Ports))
		} else {
			a.logf("%s: migrated (created, not started: the source was not running)", s.Container)
		}
	}
	return a.save()
}

// IncompleteRollbackError refuses to migrate a service whose last
// automatic rollback did not complete: its mounts may still be shifted.
type IncompleteRollbackError struct {
	Container string
	Err       string
}

func (e *IncompleteRollbackError) Error() string {
	return fmt.Sprintf("%s: the rollback of an earlier run did not complete (%s)", e.Container, e.Err)
}

// Hint says to finish the rollback first.
func (e *IncompleteRollbackError) Hint() string {
	return "run 'unroot rollback --user USER " + e.Container + "' first, then migrate again"
}

// advance moves every state of the unit forward to p (never back).
func (a *applier) advance(states []*ServiceState, p Phase) {
	for _, ss := range states {
		if !ss.Phase.AtLeast(p) {
			ss.Phase = p
		}
	}
}

func portsLine(ps []PortPlan) string {
	var parts []string
	for _, p := range ps {
		if p.Rewritten {
			parts = append(parts, fmt.Sprintf("%s→%s/%s", p.OldHostPort, p.NewHostPort, p.Proto))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; ports " + strings.Join(parts, ", ")
}

// transferImages carries the unit's images (all not yet in the target) in
// one stream.
func (a *applier) transferImages(ctx context.Context, unit []*Service) error {
	var refs []ImageRef
	for _, s := range unit {
		if slices.ContainsFunc(refs, func(r ImageRef) bool { return r.ID == s.ImageID }) {
			continue
		}
		ref := ImageRef{ID: s.ImageID}
		for _, ip := range a.plan.Images {
			if ip.ID == s.ImageID {
				ref.Tags, ref.Size = ip.Tags, ip.Size
			}
		}
		refs = append(refs, ref)
	}
	results, err := TransferImages(ctx, a.o.Source, a.o.Target, refs, a.o.Progress)
	// An image the plan meant to transfer that the target has by now (an
	// earlier run, or the admin, loaded it) moves no bytes.
	for i, r := range results {
		if a.imageSeen[r.ID] {
			continue
		}
		a.imageSeen[r.ID] = true
		if r.Skipped && slices.ContainsFunc(a.plan.Images, func(ip ImagePlan) bool { return ip.ID == r.ID && !ip.InTarget }) {
			a.expected -= refs[i].Size
			a.expect()
		}
	}
	return err
}

// stopSource stops a running source container, honouring its stop timeout
// and signal, and records when the first one stopped.
func (a *applier) stopSource(ctx context.Context, s *Service, ss *ServiceState) error {
	res, err := a.o.Source.ContainerInspect(ctx, ss.SourceID, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect source %s: %w", s.Container, err)
	}
	if res.Container.State == nil || !res.Container.State.Running {
		return nil
	}
	timeout := s.StopTimeout
	// Downtime starts when the stop is asked for: the service stops
	// answering with the signal, not when the daemon reports it gone.
	asked := time.Now().UTC()
	if _, err := a.o.Source.ContainerStop(ctx, ss.SourceID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("stop source %s: %w", s.Container, err)
	}
	if ss.StoppedAt.IsZero() {
		ss.StoppedAt = asked
	}
	a.logf("%s: source stopped", s.Container)
	return nil
}

// commit keeps the stopped source's writable-layer changes by committing it
// to an image and transferring that image.
func (a *applier) commit(ctx context.Context, s *Service, ss *ServiceState) error {
	if !s.CommitWritableLayer || a.o.NoCommit {
		return nil
	}
	ref := CommitRepo + ":" + commitTag(s.Container)
	if ss.CommittedImage == "" && committedSince(ctx, a.o.Source, ss, ref) {
		ss.CommittedImage = ref
		a.logf("%s: reusing %s, committed by an interrupted run", s.Container, ref)
	}
	if ss.CommittedImage == "" {
		if _, err := a.o.Source.ContainerCommit(ctx, ss.SourceID, client.ContainerCommitOptions{
			Reference: ref, Comment: commitComment(s.Container), NoPause: true,
		}); err != nil {
			return fmt.Errorf("commit %s: %w", s.Container, err)
		}
		ss.CommittedImage = ref
		a.logf("%s: writable layer committed as %s", s.Container, ref)
	}
	img, err := a.o.Source.ImageInspect(ctx, ss.CommittedImage)
	if err != nil {
		return fmt.Errorf("inspect committed image %s: %w", ss.CommittedImage, err)
	}
	if _, err := TransferImages(ctx, a.o.Source, a.o.Target, []ImageRef{{ID: img.ID, Tags: []string{ss.CommittedImage}, Size: img.Size}}, a.o.Progress); err != nil {
		return err
	}
	ss.Image = ss.CommittedImage
	return a.save()
}

// commitComment is the comment of the image committed from container name.
func commitComment(name string) string { return "unroot: writable layer of " + name }

// committedSince reports whether the source holds ref as committed by unroot
// from ss's container since ss's cutover started: a run killed after the
// commit and before it recorded it (the transfer that follows takes a
// while). A resume reuses that image and a rollback removes it; committing
// again would leave it behind untagged in the source (and in the target
// when its transfer had finished). An image older than the cutover is a
// rolled-back migration's and is left alone.
func committedSince(ctx context.Context, src SourceAPI, ss *ServiceState, ref string) bool {
	if ss.Started.IsZero() {
		return false
	}
	img, err := src.ImageInspect(ctx, ref)
	if err != nil || img.Comment != commitComment(ss.Container) {
		return false
	}
	created, err := time.Parse(time.RFC3339Nano, img.Created)
	return err == nil && !created.Before(ss.Started)
}

// commitTag makes a container name a valid tag ([\w][\w.-]{0,127}).
func commitTag(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c == '_' || c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !ok || i == 0 && (c == '.' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// createTarget creates the target container, or adopts the one an
// interrupted run created.
func (a *applier) createTarget(ctx context.Context, s *Service, ss *ServiceState) error {
	c, err := a.inv.Container(s.Container)
	if err != nil {
		return err
	}
	if ss.Phase.AtLeast(PhaseCreating) {
		res, err := a.o.Target.ContainerInspect(ctx, s.Container, client.ContainerInspectOptions{})
		if err == nil {
			ss.TargetID = res.Container.ID
			a.logf("%s: reusing the target container an earlier run created", s.Container)
			if err := a.save(); err != nil {
				return err
			}
			// A run killed between the create and the connects left the
			// container on its first network only.
			spec, err := a.convert(c, ss)
			if err != nil {
				return err
			}
			var have map[string]*network.EndpointSettings
			if res.Container.NetworkSettings != nil {
				have = res.Container.NetworkSettings.Networks
			}
			return a.connect(ctx, s.Container, res.Container.ID, spec.Connect, have)
		}
		if !inventory.IsNotFound(err) {
			return fmt.Errorf("inspect target %s: %w", s.Container, err)
		}
	}
	ss.Phase = PhaseCreating
	if err := a.save(); err != nil {
		return err
	}
	spec, err := a.convert(c, ss)
	if err != nil {
		return err
	}
	for _, w := range spec.Warnings {
		a.logf("%s: warning: %s", s.Container, w)
	}
	ss.Warnings = spec.Warnings
	res, err := a.o.Target.ContainerCreate(ctx, spec.Create)
	if err != nil {
		return fmt.Errorf("create %s in target: %w", s.Container, err)
	}
	ss.TargetID = res.ID
	if err := a.save(); err != nil {
		return err
	}
	if err := a.connect(ctx, s.Container, res.ID, spec.Connect, nil); err != nil {
		return err
	}
	a.logf("%s: created in target", s.Container)
	return nil
}

// convert builds the target container's configuration for c.
func (a *applier) convert(c *inventory.Container, ss *ServiceState) (*CreateSpec, error) {
	image := ss.Image
	if image == "" || image == c.Image && !a.imageHasTag(c.ImageID, c.Image) {
		image = c.ImageID
	}
	return ConvertContainer(c, ConvertOptions{
		Image: image, HostPorts: hostPortMap(ss.Ports), DockerSocket: a.o.TargetSocket, Limits: a.o.Limits,
		ContainerName: func(ref string) string {
			if other, err := a.inv.Container(ref); err == nil {
				return other.Name
			}
			return ref
		},
	})
}

// connect attaches the target container to its further networks, skipping
// those it is on already.
func (a *applier) connect(ctx context.Context, name, id string, conns []NetworkAttach, have map[string]*network.EndpointSettings) error {
	for _, n := range conns {
		if _, ok := have[n.Network]; ok {
			continue
		}
		if _, err := a.o.Target.NetworkConnect(ctx, n.Network, client.NetworkConnectOptions{Container: id, EndpointConfig: n.Endpoint}); err != nil {
			return fmt.Errorf("connect %s to network %s: %w", name, n.Network, err)
		}
	}
	return nil
}

// imageHasTag reports whether the source image id carries tag (a container
// created from a tag that has since moved to another image must be
// recreated from the ID it runs).
func (a *applier) imageHasTag(id, tag string) bool {
	for _, ip := range a.plan.Images {
		if ip.ID == id {
			return slices.Contains(ip.Tags, tag)
		}
	}
	return false
}

// hostPortMap turns the plan's port list into the old → new host port map.
func hostPortMap(ps []PortPlan) map[uint16]uint16 {
	m := map[uint16]uint16{}
	for _, p := range ps {
		if !p.Rewritten {
			continue
		}
		o, err1 := strconv.ParseUint(p.OldHostPort, 10, 16)
		n, err2 := strconv.ParseUint(p.NewHostPort, 10, 16)
		if err1 == nil && err2 == nil {
			m[uint16(o)] = uint16(n)
		}
	}
	return m
}

// HealthError says a target container did not pass the health gate.
type HealthError struct {
	Container string
	Reason    string
}

func (e *HealthError) Error() string {
	return fmt.Sprintf("%s did not become healthy in the rootless daemon: %s", e.Container, e.Reason)
}

// Hint points at the container's logs.
func (e *HealthError) Hint() string {
	return "the target container was removed; reproduce with 'docker -H unix:///run/user/UID/docker.sock run ...' and read its logs"
}

// healthGate waits until the target container is healthy (when it has a
// healthcheck) or has run for Settle without restarting and answers on each
// published TCP port on the host.
func (a *applier) healthGate(ctx context.Context, s *Service, ss *ServiceState) error {
	id := ss.TargetID
	inspect := func() (container.InspectResponse, error) {
		res, err := a.o.Target.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return container.InspectResponse{}, fmt.Errorf("inspect target %s: %w", s.Container, err)
		}
		if res.Container.State == nil {
			return container.InspectResponse{}, &HealthError{s.Container, "the daemon reports no state"}
		}
		return res.Container, nil
	}
	first, err := inspect()
	if err != nil {
		return err
	}
	if first.State.Health != nil {
		timeout := a.o.HealthTimeout
		if timeout == 0 {
			timeout = healthTimeout(first.Config)
		}
		deadline := time.Now().Add(timeout)
		for {
			c, err := inspect()
			if err != nil {
				return err
			}
			switch {
			case c.State.Health != nil && c.State.Health.Status == container.Healthy:
				a.logf("%s: healthy", s.Container)
				return nil
			case c.State.Health != nil && c.State.Health.Status == container.Unhealthy:
				return &HealthError{s.Container, "its healthcheck reports unhealthy" + lastHealthOutput(c.State.Health)}
			case !c.State.Running && !c.State.Restarting:
				return &HealthError{s.Container, fmt.Sprintf("it exited with code %d", c.State.ExitCode)}
			case time.Now().After(deadline):
				return &HealthError{s.Container, fmt.Sprintf("still %q after %s", c.State.Health.Status, timeout)}
			}
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return err
			}
		}
	}
	restarts := first.RestartCount
	deadline := time.Now().Add(a.o.Settle)
	for {
		c, err := inspect()
		if err != nil {
			return err
		}
		if !c.State.Running || c.State.Restarting || c.RestartCount != restarts {
			return &HealthError{s.Container, fmt.Sprintf("it did not keep running (exit code %d, %d restarts)", c.State.ExitCode, c.RestartCount-restarts)}
		}
		if time.Now().After(deadline) {
			return a.probePorts(ctx, s, ss, c)
		}
		if err := sleepCtx(ctx, min(500*time.Millisecond, time.Until(deadline)+time.Millisecond)); err != nil {
			return err
		}
	}
}

// probePorts connects to each published TCP port of the target on the
// host, with bounded retries.
func (a *applier) probePorts(ctx context.Context, s *Service, ss *ServiceState, c container.InspectResponse) error {
	for _, p := range ss.Ports {
		if p.Proto != "" && p.Proto != "tcp" {
			continue
		}
		host := "127.0.0.1"
		if p.HostIP != "" && p.HostIP != "0.0.0.0" && p.HostIP != "::" {
			host = p.HostIP
		}
		port := p.NewHostPort
		if _, err := strconv.Atoi(port); err != nil {
			port = boundPort(c, p, ss.Ports)
		}
		if port == "" {
			continue
		}
		addr := net.JoinHostPort(host, port)
		var last error
		ok := false
		for i := 0; i < 20; i++ {
			if err := probeTCP(ctx, addr); err == nil {
				ok = true
				break
			} else {
				last = err
			}
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return err
			}
		}
		if !ok {
			return &HealthError{s.Container, fmt.Sprintf("nothing answers on %s: %v", addr, last)}
		}
		a.logf("%s: answers on %s", s.Container, addr)
	}
	return nil
}

// probeTCP connects to addr and checks the connection stays open (or
// delivers data) for a moment: the rootless port forwarder accepts every
// connection on the host and closes it at once when nothing listens in the
// container, so a bare connect proves nothing.
func probeTCP(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
	n, err := conn.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case n > 0:
		return nil
	case errors.As(err, &ne) && ne.Timeout():
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return errors.New("connection closed at once: nothing listens behind the port")
	default:
		return err
	}
}

// boundPort is the host port the daemon picked for p ("" when unknown): a
// binding of p's container port that no explicitly numbered port of the
// service claims.
func boundPort(c container.InspectResponse, p PortPlan, all []PortPlan) string {
	if c.NetworkSettings == nil {
		return ""
	}
	key, ok := network.PortFrom(p.ContainerPort, network.IPProtocol(p.Proto))
	if !ok {
		return ""
	}
	for _, b := range c.NetworkSettings.Ports[key] {
		explicit := slices.ContainsFunc(all, func(o PortPlan) bool {
			return o.ContainerPort == p.ContainerPort && o.Proto == p.Proto && o.NewHostPort == b.HostPort
		})
		if b.HostPort != "" && !explicit {
			return b.HostPort
		}
	}
	return ""
}

// healthTimeout allows the healthcheck its start period and every retry,
// at least one minute and at most ten.
func healthTimeout(cfg *container.Config) time.Duration {
	t := time.Minute
	if cfg != nil && cfg.Healthcheck != nil {
		h := cfg.Healthcheck
		iv, to := h.Interval, h.Timeout
		if iv == 0 {
			iv = 30 * time.Second
		}
		if to == 0 {
			to = 30 * time.Second
		}
		r := h.Retries
		if r == 0 {
			r = 3
		}
		t = max(t, h.StartPeriod+time.Duration(r+1)*(iv+to))
	}
	return min(t, 10*time.Minute)
}

func lastHealthOutput(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	out := strings.TrimSpace(h.Log[len(h.Log)-1].Output)
	if len(out) > 200 {
		out = out[:200]
	}
	if out == "" {
		return ""
	}
	return ": " + out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// disableSourceRestart sets the source's restart policy to "no", so a
// reboot does not start both; rollback restores the recorded policy.
func (a *applier) disableSourceRestart(ctx context.Context, ss *ServiceState) error {
	if ss.RestartPolicyChanged || ss.RestartPolicy.Name == "" || ss.RestartPolicy.Name == "no" {
		return nil
	}
	if _, err := a.o.Source.ContainerUpdate(ctx, ss.SourceID, client.ContainerUpdateOptions{
		RestartPolicy: &container.RestartPolicy{Name: container.RestartPolicyDisabled},
	}); err != nil {
		return fmt.Errorf("set restart policy of source %s to no: %w", ss.Container, err)
	}
	ss.RestartPolicyChanged = true
	return a.save()
}

// flushTargets syncs the filesystems of the target volumes (once each).
// Errors are only logged: a flush is a speed-up, the final sync and the
// state file's own fsyncs are what make the data safe.
func (a *applier) flushTargets(vstates []*VolumeState) {
	done := map[uint64]bool{}
	for _, vs := range vstates {
		if vs.TargetPath == "" {
			continue
		}
		fd, err := unix.Open(vs.TargetPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && !done[st.Dev] {
			done[st.Dev] = true
			start := time.Now()
			if err := unix.Syncfs(fd); err != nil {
				a.logf("volume %s: flushing its filesystem failed: %v", vs.Name, err)
			} else if d := time.Since(start); d >= 100*time.Millisecond {
				a.logf("volume %s: pre-synced data written to disk in %s, before the source stops", vs.Name, d.Round(time.Millisecond))
			}
		}
		unix.Close(fd)
	}
}
