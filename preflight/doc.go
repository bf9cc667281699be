// Package preflight tells whether a host and a user are ready to run a
// rootless Docker daemon that unroot can migrate to: user namespaces,
// subordinate id ranges, the setuid helpers, rootlesskit and its network
// driver, cgroup delegation, linger, resource limits, unprivileged ports, and
// what the rootful (source) and rootless (target) daemons say about
// themselves.
//
// [Run] returns a [Report] of [Check]s, each with a stable id, a status, what
// was found and the command that fixes it. Every file it reads is looked up
// under the roots in [Options], and both daemons sit behind narrow
// interfaces, so tests run the checks against a fake root and fake daemons.
//
// The checks only read; none of them changes the host. Do not use this
// package to decide the id map of a migration: it reports subordinate ranges
// for a person, while package chown builds and validates maps.
package preflight
