package migrate

import (
	"fmt"
	"slices"
	"strings"
)

// Severity says whether a [Finding] stops the migration.
type Severity string

// Severities, from worst to mildest.
const (
	// Blocker findings make the plan inapplicable until resolved.
	Blocker Severity = "blocker"
	// Warning findings carry over with a change in behaviour the admin must know.
	Warning Severity = "warning"
	// Info findings describe what unroot will do on the admin's behalf.
	Info Severity = "info"
)

// Finding is one incompatibility or notable fact about the plan. Code is
// stable (docs/audit.md lists every code); Message and Hint are for people.
type Finding struct {
	Code      string   `json:"code"`
	Severity  Severity `json:"severity"`
	Container string   `json:"container,omitempty"`
	// Subject is what the finding is about: a path, port, network, volume.
	Subject string `json:"subject,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Finding codes. They are part of the JSON schema: never rename one.
const (
	CodePrivileged        = "privileged"
	CodeDevices           = "devices"
	CodeDeviceRequests    = "device-requests"
	CodeHostNetwork       = "host-network"
	CodeHostPID           = "host-pid"
	CodeHostIPC           = "host-ipc"
	CodeHostUTS           = "host-uts"
	CodeHostUserns        = "host-userns"
	CodeContainerNetwork  = "container-network"
	CodeHostCapability    = "host-capability"
	CodeLimitsIgnored     = "limits-not-enforced"
	CodeAppArmor          = "apparmor"
	CodeSELinux           = "selinux"
	CodeSeccomp           = "seccomp-profile"
	CodeNetworkDriver     = "network-driver"
	CodeVolumeDriver      = "volume-driver"
	CodeLogDriver         = "log-driver"
	CodeUsernsRemap       = "source-userns-remap"
	CodeSysctl            = "sysctl"
	CodeSystemBind        = "system-bind"
	CodeDockerSocket      = "docker-socket"
	CodePortRewritten     = "port-rewritten"
	CodePortConflict      = "port-conflict"
	CodePortRange         = "port-range"
	CodeSCTPPort          = "sctp-port"
	CodeUnmappable        = "unmappable-ids"
	CodeDeviceNodes       = "device-nodes"
	CodeNestedMount       = "nested-mount"
	CodeEscapingSymlinks  = "escaping-symlinks"
	CodeWritableLayer     = "writable-layer"
	CodeTargetNameTaken   = "target-name-taken"
	CodeAlreadyMigrated   = "already-migrated"
	CodeResume            = "resume"
	CodeMapMismatch       = "id-map-mismatch"
	CodeMapFromFiles      = "id-map-from-subid"
	CodeImageMissing      = "image-missing"
	CodeLinks             = "links"
	CodeVolumesFrom       = "volumes-from"
	CodeRuntime           = "runtime"
	CodeMoveCrossFS       = "move-cross-filesystem"
	CodeBindMissing       = "bind-source-missing"
	CodeAnonymousVolume   = "anonymous-volume"
	CodeCgroupParent      = "cgroup-parent"
	CodeOomKillDisable    = "oom-kill-disable"
	CodeSharedBind        = "shared-volume"
	CodeExternalHardlink  = "external-hardlinks"
	CodeMalformedXattr    = "malformed-xattrs"
	CodeTargetNotRootless = "target-not-rootless"
	CodePrerequisite      = "prerequisite-failed"
	CodeDomainname        = "domainname"
	CodeBindOutsideSelect = "bind-shared-with-unselected"
	CodeComposeOneOff     = "compose-one-off"
	CodeComposeReplica    = "compose-replica-not-selected"
	CodeComposeUnreadable = "compose-file-unreadable"
	CodeComposePartial    = "compose-partial-project"
	CodeComposeFileExists = "compose-file-exists"
	CodeComposeManual     = "compose-manual-edit"
	CodeComposeFile       = "compose-file"
)

// hostOnlyCaps are capabilities that grant nothing inside a user namespace:
// they act on the host's kernel, clock, devices or modules.
var hostOnlyCaps = []string{
	"SYS_MODULE", "SYS_RAWIO", "SYS_TIME", "SYS_BOOT", "MKNOD", "SYS_RESOURCE",
	"AUDIT_CONTROL", "AUDIT_READ", "MAC_ADMIN", "MAC_OVERRIDE", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "LINUX_IMMUTABLE", "SYS_PACCT", "PERFMON",
	"BPF", "CHECKPOINT_RESTORE", "SYS_ADMIN", "ALL",
}

// normCap strips the CAP_ prefix and upper-cases a capability name.
func normCap(c string) string {
	return strings.TrimPrefix(strings.ToUpper(c), "CAP_")
}

// isHostOnlyCap reports whether capability c only works in the host namespace.
func isHostOnlyCap(c string) bool { return slices.Contains(hostOnlyCaps, normCap(c)) }

// hostLogDrivers need a socket or service of the host that a rootless
// daemon's namespace does not reach in the same way.
var hostLogDrivers = []string{"journald", "syslog", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs", "logentries"}

// systemPaths may never be shifted: they are the host's, not a container's.
var systemPaths = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/opt",
	"/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/var/lib",
	"/var/lib/docker", "/var/log", "/var/run", "/mnt", "/media",
}

// IsSystemPath reports whether p (absolute, cleaned) is a system directory
// or lies under /proc, /sys or /dev, or is a parent of the docker data root:
// shifting such a path would give host files to the rootless user.
func IsSystemPath(p string) bool {
	if slices.Contains(systemPaths, p) {
		return true
	}
	for _, pre := range []string{"/proc/", "/sys/", "/dev/", "/boot/", "/usr/", "/etc/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/var/lib/docker/"} {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}

// isDockerSocket reports whether a bind source is the rootful docker socket.
func isDockerSocket(p string) bool {
	return p == "/var/run/docker.sock" || p == "/run/docker.sock"
}

func (p *Plan) add(f Finding) { p.Findings = append(p.Findings, f) }

func (p *Plan) addf(code string, sev Severity, container, subject, hint, format string, a ...any) {
	p.add(Finding{Code: code, Severity: sev, Container: container, Subject: subject, Hint: hint, Message: fmt.Sprintf(format, a...)})
}

// Blockers returns the findings that stop the migration.
func (p *Plan) Blockers() []Finding {
	var out []Finding
	for _, f := range p.Findings {
		if f.Severity == Blocker {
			out = append(out, f)
		}
	}
	return out
}

// sortFindings orders findings by severity, then container, then code, so the
// output is stable.
func sortFindings(fs []Finding) {
	rank := map[Severity]int{Blocker: 0, Warning: 1, Info: 2}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if d := rank[a.Severity] - rank[b.Severity]; d != 0 {
			return d
		}
		if c := strings.Compare(a.Container, b.Container); c != 0 {
			return c
		}
		if c := strings.Compare(a.Code, b.Code); c != 0 {
			return c
		}
		return strings.Compare(a.Subject, b.Subject)
	})
}
